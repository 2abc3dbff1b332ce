{
  "targets": [
    {
      "target_name": "sluice_holes",
      "sources": ["native/holes.c"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
