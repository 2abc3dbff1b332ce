import { COMMANDS } from './commands';
import { EXIT_STATUS_TEXT } from './core/command';

const USAGE = `Usage: sluice COMMAND [ARGS...]
       sluice --help | --version

Runs one of the toolkit's commands; \`sluice file-blocks disk.img\` is the same as
\`file-blocks disk.img\`. Each command prints its own usage with --help.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(14)} ${c.summary}`).join('\n')}

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
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(`./${entry.kind}/${entry.name}`) as { main(argv: string[]): Promise<void> };
  void mod.main(rest);
}
