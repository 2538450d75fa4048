/**
 * `vercel integration add storehouse/postgres` end to end (issue 13): the wall time of the real
 * CLI (the pinned devDependency) in a linked directory, creating a free Postgres store, connecting
 * it to the project and pulling `.env.local`, against the same steps sent through `@vercel/sdk`
 * from this process (who am I, the team, the installation, the create, the connection, the
 * development variables decrypted), alternating, in the same run. The CLI's own start-up,
 * `vercel --version` (no request at all), is measured beside it: most of a command's time is the
 * CLI loading itself, which no server can shorten.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Vercel } from '@vercel/sdk';
import { randomBase62 } from '../src/ids.ts';
import { cliUser } from '../test/cli-harness.ts';
import { startInProcess } from './in-process.ts';
import { median, time } from './measure.ts';

const ROUNDS = 5;

export interface CliAddResult {
  rounds: number;
  cliAddMedianMs: number;
  cliAddRunsMs: number[];
  sdkStepsMedianMs: number;
  sdkStepsRunsMs: number[];
  cliVersionMedianMs: number;
  cliVersionRunsMs: number[];
  /** CLI add / SDK steps. */
  ratio: number;
  /** (CLI add − CLI start-up) / SDK steps: the command's own work against the same requests. */
  ratioWithoutStartup: number;
}

export async function benchCliAdd(log: (line: string) => void): Promise<CliAddResult> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-bench-cli-'));
  // Run as root, the embedded PostgreSQL runs as its own user, which must pass through it.
  fs.chmodSync(scratch, 0o711);
  // The CLI refuses a --token with a "-" in it.
  const token = `bench${randomBase62(24)}`;
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const { base } = await startInProcess(
      { STOREHOUSE_DATA_DIR: path.join(scratch, 'storehouse'), STOREHOUSE_BOOTSTRAP_TOKEN: token, STOREHOUSE_TEAM_STORE_QUOTA: '1000' },
      closers,
    );
    const sdk = new Vercel({ bearerToken: token, serverURL: base });
    const user = cliUser({ url: base, token });
    closers.push(async () => user.remove());
    const checked = async (args: string[]) => {
      const result = await user.run(args);
      if (result.code !== 0) throw new Error(`vercel ${args.join(' ')} exited ${result.code}:\n${result.output}`);
    };
    // A project of its own for each store: a second store's variables would clash with the first's.
    const newProject = (name: string) => sdk.projects.createProject({ requestBody: { name } });
    const cliAdd = async (name: string) => {
      const project = await newProject(`${name}-app`);
      await checked(['link', '--yes', '--project', project.name]);
      return time(() => checked(['integration', 'add', 'storehouse/postgres', '--name', name]));
    };

    const sdkSteps = async (name: string) => {
      const project = await newProject(`${name}-app`);
      return time(() => sdkAdd(name, project.id));
    };
    const sdkAdd = async (name: string, projectId: string) => {
      const { user: me } = (await sdk.user.getAuthUser())!;
      await sdk.teams.getTeam({ teamId: me.defaultTeamId! });
      const [installation] = await sdk.integrations.getConfigurations({
        view: 'account',
        installationType: 'marketplace',
        integrationIdOrSlug: 'oac_storehouse',
      });
      const { store } = await sdk.integrations.createIntegrationStoreDirect({
        requestBody: { name, integrationConfigurationId: installation!.id!, integrationProductIdOrSlug: 'postgres' },
      });
      await sdk.integrations.connectIntegrationResourceToProject({
        integrationConfigurationId: installation!.id!,
        // The SDK's store has no id; its externalResourceId names it as well.
        resourceId: store!.externalResourceId!,
        requestBody: { projectId, envVarEnvironments: ['production', 'preview', 'development'] },
      });
      const listed = await sdk.projects.filterProjectEnvs({ idOrName: projectId, decrypt: 'true' });
      if (!JSON.stringify(listed).includes('POSTGRES_URL')) throw new Error('the SDK steps pulled no POSTGRES_URL');
    };

    // One of each first: the SDK's modules, the CLI's caches, the routes' compiled schemas.
    await checked(['--version']);
    await cliAdd('warm-cli');
    await sdkSteps('warm-sdk');

    const cliRuns: number[] = [];
    const sdkRuns: number[] = [];
    const versionRuns: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      versionRuns.push(await time(() => checked(['--version'])));
      cliRuns.push(await cliAdd(`cli-${round}`));
      if (!fs.readFileSync(path.join(user.cwd, '.env.local'), 'utf8').includes('POSTGRES_URL='))
        throw new Error('vercel integration add pulled no POSTGRES_URL into .env.local');
      sdkRuns.push(await sdkSteps(`sdk-${round}`));
      log(
        `  round ${round + 1}: vercel integration add ${cliRuns.at(-1)!.toFixed(0)} ms, the same steps through @vercel/sdk ${sdkRuns.at(-1)!.toFixed(0)} ms, vercel --version ${versionRuns.at(-1)!.toFixed(0)} ms`,
      );
    }
    const cliAddMedianMs = median(cliRuns);
    const sdkStepsMedianMs = median(sdkRuns);
    const cliVersionMedianMs = median(versionRuns);
    return {
      rounds: ROUNDS,
      cliAddMedianMs,
      cliAddRunsMs: cliRuns,
      sdkStepsMedianMs,
      sdkStepsRunsMs: sdkRuns,
      cliVersionMedianMs,
      cliVersionRunsMs: versionRuns,
      ratio: cliAddMedianMs / sdkStepsMedianMs,
      ratioWithoutStartup: (cliAddMedianMs - cliVersionMedianMs) / sdkStepsMedianMs,
    };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
