'use strict';
// The registry, the executables, package.json and the README agree on the set of commands; the
// README's demo runs.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { ROOT, ok, describe, tmpdir } = require('./lib/run');
const { COMMANDS } = require('../dist/commands.js');

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

// Command sections are `#### \`name\`` under a category heading (`### Block streams`), or a
// `### \`name\`` of their own, within "## Commands".
const commandsStart = readme.indexOf('\n## Commands\n');
const commandsEnd = readme.indexOf('\n## ', commandsStart + 1);
const commandsSection = readme.slice(commandsStart, commandsEnd < 0 ? undefined : commandsEnd);
const commandHeadings = [...commandsSection.matchAll(/^#{3,4} `([^`]+)`$/gm)].map((m) => m[1]);

for (const c of COMMANDS) {
  // A composition is its bash script in bin/; every other command a module with a bin/ shim.
  const composition = c.kind === 'compositions';
  test(`${c.name}: has its ${composition ? 'bash script' : 'module, bin shim'}, package bin entry and README section`, () => {
    const shim = path.join(ROOT, 'bin', c.name);
    assert.ok(fs.existsSync(shim), 'bin shim');
    assert.ok(fs.statSync(shim).mode & 0o111, 'bin shim is executable');
    if (composition) assert.match(fs.readFileSync(shim, 'utf8'), /^#!\/usr\/bin\/env bash\n/, 'bin script in bash');
    else assert.ok(fs.existsSync(path.join(ROOT, 'src', c.kind, `${c.name}.ts`)), 'module');
    assert.strictEqual(pkg.bin[c.name], `bin/${c.name}`, 'package.json bin entry');
    assert.ok(commandHeadings.includes(c.name), `README section: a heading \`${c.name}\` under "## Commands"`);
  });
}

test('every package.json bin entry but sluice itself is a registered command', () => {
  const registered = new Set(COMMANDS.map((c) => c.name));
  assert.deepStrictEqual(Object.keys(pkg.bin).filter((name) => name !== 'sluice' && !registered.has(name)), []);
});

test('README: each command once; every category heading holds command sections one level below it', () => {
  assert.deepStrictEqual([...new Set(commandHeadings)], commandHeadings, 'no command has two sections');
  let category; // the category heading being read, and how many command sections it has
  const endCategory = () => assert.ok(!category || category.commands > 0, `"### ${category?.text}" holds command sections (at level 4)`);
  for (const [, hashes, text] of commandsSection.matchAll(/^(#{3,4}) (.*)$/gm)) {
    if (hashes === '###') {
      endCategory();
      category = text.startsWith('`') ? undefined : { text, commands: 0 };
    } else {
      assert.ok(category && text.startsWith('`'), `"${hashes} ${text}" is a command section under a category`);
      category.commands++;
    }
  }
  endCategory();
});

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

test('the demo runs: both round trips (local store, EBS snapshots on ebs-emulator) end identical', async () => {
  const r = await ok(`bash ${path.join(ROOT, 'examples/demo.sh')} ${tmpdir('sluice-demo-')}`);
  const out = r.stdout.toString();
  assert.match(out, /^ {3}identical: 67121209 bytes$/m, describe(r));
  assert.match(out, /^ {3}identical: disk\.img -> snap-[0-9a-f]{17} -> archive -> snap-[0-9a-f]{17} -> downloaded\.img$/m, describe(r));
});
