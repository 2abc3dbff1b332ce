'use strict';
// The registry, the executables, package.json and the README agree on the set of commands.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { ROOT } = require('./lib/run');
const { COMMANDS } = require('../dist/commands.js');

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

for (const c of COMMANDS) {
  test(`${c.name}: has its module, bin shim, package bin entry and README section`, () => {
    assert.ok(fs.existsSync(path.join(ROOT, 'src', c.kind, `${c.name}.ts`)), 'module');
    const shim = path.join(ROOT, 'bin', c.name);
    assert.ok(fs.existsSync(shim), 'bin shim');
    assert.ok(fs.statSync(shim).mode & 0o111, 'bin shim is executable');
    assert.strictEqual(pkg.bin[c.name], `bin/${c.name}`, 'package.json bin entry');
    assert.match(readme, new RegExp(`^### \`${c.name}\``, 'm'), 'README section');
  });
}

test('the README names the two set-up commands and the test command CI runs', () => {
  assert.match(readme, /npm ci && npm run demo/);
  assert.match(readme, /npm test/);
  const ci = fs.readFileSync(path.join(ROOT, '.ci/run'), 'utf8');
  assert.match(ci, /^npm test$/m);
});

test('every exit status in the runtime table is in the README table', () => {
  const { EXIT } = require('../dist/core/errors.js');
  for (const code of Object.values(EXIT)) assert.match(readme, new RegExp(`^\\| ${code} \\|`, 'm'), `status ${code}`);
});
