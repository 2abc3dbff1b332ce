import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import * as path from 'node:path';
import { COMMANDS, CommandEntry } from './commands';
import { EXIT } from './core/errors';
import { EXIT_STATUS_TEXT } from './core/command';

const KIND_HEADINGS: Record<CommandEntry['kind'], string> = {
  sources: 'Sources (start a stream):',
  transforms: 'Transforms (read a stream, write one):',
  sinks: 'Sinks (end a stream):',
  compositions: 'Compositions (whole jobs, each a pipeline of the commands above):',
  servers: 'Servers:',
};

// Grouped by kind, with no blank line inside the list, so it reads as one block of commands.
const nameWidth = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
const commandList = (Object.keys(KIND_HEADINGS) as CommandEntry['kind'][])
  .flatMap((kind) => {
    const entries = COMMANDS.filter((c) => c.kind === kind);
    return entries.length === 0 ? [] : [KIND_HEADINGS[kind], ...entries.map((c) => `  ${c.name.padEnd(nameWidth)}${c.summary}`)];
  })
  .join('\n');

const USAGE = `Usage: sluice COMMAND [ARGS...]
       sluice --help | --version

Runs one of the toolkit's commands; \`sluice file-blocks disk.img\` is the same as
\`file-blocks disk.img\`. Each command prints its own usage with --help.

Commands:
${commandList}

${EXIT_STATUS_TEXT}
`;

export function main(argv: string[]): void {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(USAGE);
    if (name === undefined) process.exitCode = 2;
    return;
  }
  if (name === '--version') {
    process.stdout.write(`sluice ${require('../package.json').version}\n`);
    return;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`sluice: unknown command ${JSON.stringify(name)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (entry.kind === 'compositions') {
    runComposition(entry.name, rest);
    return;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(`./${entry.kind}/${entry.name}`) as { main(argv: string[]): Promise<void> };
  void mod.main(rest);
}

// A signal sent to sluice alone is passed on to the composition's script; sluice then waits for
// the script to end and ends with its status.
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs a composition's bash script from bin/ with the same stdio, and ends with its status (a
 * signal as 128+n). exitCode, not exit(): nothing written is cut short.
 */
function runComposition(name: string, args: string[]): void {
  const script = path.join(__dirname, '..', 'bin', name);
  const child = spawn(script, args, { stdio: 'inherit' });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const s of FORWARDED) process.on(s, forward);
  child.on('error', (err) => {
    process.stderr.write(`sluice: ${name}: cannot run ${script}: ${err.message}\n`);
    process.exitCode = EXIT.FAILURE;
  });
  child.on('close', (code, signal) => {
    for (const s of FORWARDED) process.off(s, forward);
    process.exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
  });
}
