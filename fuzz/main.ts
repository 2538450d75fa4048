/**
 * `npm run fuzz [-- --count N] [--seconds S] [--long] [--seed N] [--postgres] [--trace]`: property-based
 * requests from /openapi.json against a Storehouse started in-process. Exits 1 on any failure.
 */
import { parseArgs } from 'node:util';
import { POSTGRES_URL } from '../test/helpers.ts';
import { formatReport, runFuzz, type FuzzOptions } from './runner.ts';

/** The short run (the one `npm test` makes) and the long one (`--long`). */
export const SHORT = { count: 2500, seconds: 60, shrinkSeconds: 20 };
export const LONG = { count: 50_000, seconds: 900, shrinkSeconds: 120 };

function positive(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new Error(`--${name} takes a whole number, not ${JSON.stringify(text)}`);
  return value;
}

export function optionsFromArgs(args: string[]): FuzzOptions {
  const { values } = parseArgs({
    args,
    options: {
      count: { type: 'string' },
      seconds: { type: 'string' },
      seed: { type: 'string' },
      long: { type: 'boolean', default: false },
      postgres: { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const defaults = values.long ? LONG : SHORT;
  if (values.postgres && !POSTGRES_URL) throw new Error('--postgres needs STOREHOUSE_TEST_DATABASE_URL');
  return {
    count: positive('count', values.count) ?? defaults.count,
    seconds: positive('seconds', values.seconds) ?? defaults.seconds,
    seed: positive('seed', values.seed) ?? Math.floor(Math.random() * 2 ** 31),
    shrinkSeconds: defaults.shrinkSeconds,
    backend: values.postgres ? 'postgres' : 'embedded',
    redisUrl: process.env.STOREHOUSE_TEST_REDIS_URL || undefined,
    log: (line) => process.stderr.write(`${line}\n`),
    trace: values.trace,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const report = await runFuzz(optionsFromArgs(process.argv.slice(2)));
  process.stdout.write(`${formatReport(report)}\n`);
  process.exit(report.groups.length ? 1 : 0);
}
