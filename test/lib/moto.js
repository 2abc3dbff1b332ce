'use strict';
// moto's S3 server, the reference S3 of the tests: started on a free loopback port, stopped by
// its PID. moto is a Python package (pip install "moto[server]"), not an npm one: when it is
// missing the tests fail saying so, rather than pass without S3.
const { spawn, spawnSync } = require('node:child_process');
const net = require('node:net');

const INSTALL = 'moto is needed for the S3 tests: install it with  pip install "moto[server]"  (moto_server must then be on PATH, or python3 -m moto.server must work)';

/** The command that runs moto's server, or undefined when neither form is installed. */
function motoCommand() {
  if (spawnSync('moto_server', ['--help'], { stdio: 'ignore' }).status === 0) return ['moto_server'];
  if (spawnSync('python3', ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0) return ['python3', '-m', 'moto.server'];
  return undefined;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a moto server; resolves with { url, env, createBucket(name), reset(), stop() }. `env`
 * holds the AWS settings that point a command (or this process, via useEnv()) at it.
 */
async function startMoto() {
  const cmd = motoCommand();
  if (!cmd) throw new Error(INSTALL);
  const port = await freePort();
  const child = spawn(cmd[0], [...cmd.slice(1), '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  for (let tries = 0; ; tries++) {
    const up = await fetch(url).then(() => true, () => false);
    if (up) break;
    if (child.exitCode !== null || tries >= 300) {
      child.kill();
      throw new Error(`moto_server did not start on ${url}:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const env = {
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: url,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  return {
    url,
    env,
    /** Points this process's SDK clients at the server (profiles set on the machine would win). */
    useEnv() {
      Object.assign(process.env, env);
      delete process.env.AWS_PROFILE;
    },
    async createBucket(name) {
      const res = await fetch(`${url}/${name}`, { method: 'PUT' });
      if (!res.ok) throw new Error(`creating bucket ${name} on moto: HTTP ${res.status} ${await res.text()}`);
    },
    async reset() {
      await fetch(`${url}/moto-api/reset`, { method: 'POST' });
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

module.exports = { startMoto, INSTALL };
