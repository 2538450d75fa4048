/**
 * `npm run chaos [-- --long] [-- --seed N] [-- --nodes N]`: runs the chaos suite (see run.ts), prints its table
 * and exits 1 on any loss, orphan, stuck store, broken credential, leak, secret in a log or 500, or on
 * a run whose zeros mean nothing (kills not made, nothing acknowledged between them, no outage seen).
 * With `--nodes N` (2 or more; 3 is the platform team's set-up) it runs the multi-node mode and also
 * exits 1 on a replay that disagreed, a dead node's work taken over past its bound, a request that
 * waited past the bound while a dependency hung, or nodes listing different stores.
 */
import { parseArgs } from 'node:util';
import { runChaos } from './run.ts';
import { table } from './report.ts';

const { values } = parseArgs({
  options: {
    long: { type: 'boolean', default: false },
    seed: { type: 'string' },
    nodes: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write('usage: npm run chaos [-- --long] [-- --seed N] [-- --nodes N]\n');
  process.exit(0);
}

const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) {
  process.stderr.write(`--seed must be a non-negative integer, got "${values.seed}"\n`);
  process.exit(2);
}

const nodes = Number(values.nodes);
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) {
  process.stderr.write(`--nodes must be an integer from 1 to 9, got "${values.nodes}"\n`);
  process.exit(2);
}

process.stderr.write(
  `chaos: seed ${seed}${values.long ? ', long run' : ''}${nodes > 1 ? `, ${nodes} nodes` : ''} (run again with --seed ${seed}${nodes > 1 ? ` --nodes ${nodes}` : ''})\n`,
);
try {
  const result = await runChaos({ seed, long: values.long, nodes });
  process.stdout.write(`\n${table(result.phases)}\n\nseed ${seed}, ${(result.durationMs / 1000).toFixed(0)} s, logs in ${result.logDir}\n`);
  if (result.failures.length > 0) {
    process.stdout.write(`\nFAILED:\n${result.failures.map((f) => `- ${f}`).join('\n')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('\nevery invariant held\n');
  }
} catch (error) {
  process.stderr.write(`chaos: the run could not complete: ${(error as Error).stack}\n`);
  process.exitCode = 2;
}
