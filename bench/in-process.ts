/** Storehouse in the bench's own process (bench/stores.ts, bench/partners.ts): its runtime, and its app listening. */
import pino from 'pino';
import { loadConfig } from '../src/config.ts';
import { buildApp } from '../src/http/app.ts';
import { openRuntime, type Runtime } from '../src/runtime.ts';

/** Far above what a bench sends: the limiters stay on and count every request, as in production. */
export const UNLIMITED_RATES = {
  STOREHOUSE_RATE_LIMIT_REQUESTS: '1000000000',
  STOREHOUSE_RATE_LIMIT_STORE_CREATES: '1000000000',
  STOREHOUSE_RATE_LIMIT_STORE_UPDATES: '1000000000',
};

/**
 * Opens the runtime of `env` (with UNLIMITED_RATES, and LOG_LEVEL warn unless it says otherwise)
 * and serves its app on a free loopback port. What it opened is pushed to `closers`, so the
 * caller closes it in reverse order, also when a later step fails.
 */
export async function startInProcess(
  env: Record<string, string | undefined>,
  closers: Array<() => Promise<unknown>>,
): Promise<{ runtime: Runtime; base: string }> {
  const config = loadConfig({ LOG_LEVEL: 'warn', ...UNLIMITED_RATES, ...env });
  const runtime = await openRuntime(config, { logger: pino({ level: 'warn' }) });
  closers.push(() => runtime.close());
  const app = await buildApp(runtime, { logger: false });
  closers.push(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { runtime, base: runtime.urls.publicUrl() };
}
