// lseek(SEEK_DATA / SEEK_HOLE) for Node, which has no binding for them: file-blocks uses them
// to skip the holes of a sparse file instead of reading gigabytes of zeros.
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

// The few errors lseek can give here, named as Node names them in err.code.
static const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EOVERFLOW: return "EOVERFLOW";
    case ESPIPE: return "ESPIPE";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return NULL;
  }
}

// Offsets travel as JS numbers: exact up to 2^53 bytes, far beyond any file.
static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *name) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd;
  int64_t offset;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &offset) != napi_ok || fd < 0 || offset < 0) {
    napi_throw_type_error(env, NULL, "expected (fd, offset): two non-negative integers");
    return NULL;
  }
  off_t found = lseek(fd, (off_t)offset, whence);
  if (found < 0) {
    int err = errno;
    // ENXIO: no data (or no hole) at or after offset; the caller treats it as "none".
    if (err == ENXIO) found = -1;
    else {
      char message[160];
      snprintf(message, sizeof message, "%s(fd %d, offset %lld): %s", name, fd, (long long)offset, strerror(err));
      napi_throw_error(env, errno_name(err), message);
      return NULL;
    }
  }
  napi_value result;
  napi_create_int64(env, (int64_t)found, &result);
  return result;
}

static napi_value seek_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "seekData");
}

static napi_value seek_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "seekHole");
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 2, props) != napi_ok) return NULL;
  return exports;
}
