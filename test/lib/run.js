'use strict';
// Runs real executables in bash pipes, as a user would, and reports every stage on failure.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'bin');

/**
 * Runs `script` under `bash -o pipefail`, with bin/ first on PATH. Resolves with the exit status,
 * the PIPESTATUS of the script's last pipeline, stdout (a Buffer) and stderr (a string).
 */
function sh(script, { input, cwd, env, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const statusFile = path.join(os.tmpdir(), `sluice-status-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const wrapped = `${script}\n__s=("\${PIPESTATUS[@]}"); echo "\${__s[*]}" > ${statusFile}; exit $(( __s[-1] != 0 ? __s[-1] : 0 ))`;
    const full = `set -o pipefail\n${wrapped}`;
    const child = spawn('bash', ['-c', full], {
      cwd,
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out = [];
    let err = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let statuses = [];
      try {
        statuses = fs.readFileSync(statusFile, 'utf8').trim().split(/\s+/).map(Number);
        fs.unlinkSync(statusFile);
      } catch {}
      resolve({ code: code ?? 128, signal, statuses, stdout: Buffer.concat(out), stderr: err, script });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** A readable account of a run, for assertion messages. */
function describe(r) {
  return `\n--- script:\n${r.script}\n--- exit ${r.code}, PIPESTATUS ${r.statuses.join(' ')}\n--- stderr:\n${r.stderr}\n--- stdout (first 500 bytes):\n${r.stdout.subarray(0, 500).toString()}`;
}

/** Runs a script and throws with the full account unless it exits 0. */
async function ok(script, opts) {
  const r = await sh(script, opts);
  if (r.code !== 0) throw new Error(`expected success${describe(r)}`);
  return r;
}

// Every folder tmpdir() made goes when the test file's process ends, passed or failed: the suite
// moves gigabytes, and a machine whose /tmp fills up fails every later run with ENOSPC.
// SLUICE_KEEP_TMP=1 keeps them for a look after a failure.
const madeDirs = [];
process.on('exit', () => {
  if (process.env.SLUICE_KEEP_TMP) return;
  for (const dir of madeDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tmpdir(prefix = 'sluice-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

module.exports = { sh, ok, describe, tmpdir, ROOT, BIN };
