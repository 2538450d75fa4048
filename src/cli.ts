#!/usr/bin/env node
/**
 * `storehouse`: start the server, migrate, check a catalog file, and administer teams, members,
 * tokens and installations. Admin commands open the configured state directly; when a running
 * server holds the embedded data dir, they are sent to it over its control socket instead.
 */
import { Command, Option } from 'commander';
import { callControlSocket } from './admin/control-socket.ts';
import { type AdminCommand, runAdminCommand } from './admin/commands.ts';
import { CatalogError, loadCatalogFile } from './catalog/catalog-file.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DataDirLockedError } from './db/lock.ts';
import { AppError } from './errors.ts';
import { serve } from './main.ts';
import { migrate } from './db/migrate.ts';
import { openAdminContext, openConfiguredDatabase } from './runtime.ts';
import { TEAM_ROLES } from './tenancy/teams.ts';

// biome-ignore lint/suspicious/noExplicitAny: each command's printer reads the result its own command returns
type Printer = (result: any) => string;

const table = (rows: Array<Record<string, unknown>>, columns: string[]): string => {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((row) =>
    columns.map((column) => {
      const value = row[column];
      return value === null || value === undefined ? '-' : value instanceof Date ? value.toISOString() : String(value);
    }),
  );
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns), ...cells.map(line)].join('\n');
};

/**
 * Runs `local` on the configured state; when a running server holds the embedded data dir (so
 * the state cannot be opened here), sends the admin command to that server instead.
 */
async function locallyOrOnServer(
  local: () => Promise<unknown>,
  command: AdminCommand,
  args: Record<string, string | undefined>,
): Promise<unknown> {
  try {
    return await local();
  } catch (error) {
    if (!(error instanceof DataDirLockedError)) throw error;
    return callControlSocket(loadConfig().dataDir, command, args);
  }
}

function print(result: unknown, printer: Printer, json: boolean) {
  // A JSON round trip, so results read the same whichever process produced them.
  const plain = JSON.parse(JSON.stringify(result ?? null));
  process.stdout.write(`${json ? JSON.stringify(plain, null, 2) : printer(plain)}\n`);
}

/** An admin command on the state as the servers left it (the CLI never syncs its own catalog file). */
async function runCommand(command: AdminCommand, args: Record<string, string | undefined>, printer: Printer, json: boolean) {
  const config = loadConfig();
  const result = await locallyOrOnServer(
    async () => {
      const context = await openAdminContext(config);
      try {
        return await runAdminCommand(context, command, args);
      } finally {
        await context.close();
      }
    },
    command,
    args,
  );
  print(result, printer, json);
}

export function buildCli(): Command {
  const program = new Command('storehouse')
    .description(
      "Storehouse: a self-hostable integration marketplace speaking Vercel's REST API.\nConfiguration comes from the environment (see docs/configuration.md): DATABASE_URL, STOREHOUSE_DATA_DIR, STOREHOUSE_CATALOG, ...",
    )
    .option('--json', 'print results as JSON')
    .showHelpAfterError();

  /** Makes `command` (already named, with its arguments and options) run an admin command. */
  const admin = (command: Command, description: string, adminCommand: AdminCommand, print: Printer) =>
    command.description(description).action(async function (this: Command) {
      const positional = this.registeredArguments.map((argument, i) => [argument.name(), this.args[i]]);
      const args = { ...Object.fromEntries(positional), ...this.opts() } as Record<string, string | undefined>;
      await runCommand(adminCommand, args, print, Boolean(program.opts().json));
    });

  program
    .command('start')
    .description('run the server (what `npm start` does)')
    .action(async () => serve(loadConfig()));

  program
    .command('migrate')
    .description('apply database migrations (they also run at every start; running them twice is harmless)')
    .action(async () => {
      const config = loadConfig();
      const result = await locallyOrOnServer(
        async () => {
          const db = await openConfiguredDatabase(config);
          try {
            return { applied: await migrate(db) };
          } finally {
            await db.close();
          }
        },
        'migrate',
        {},
      );
      print(
        result,
        (r) => (r.applied.length ? `applied ${r.applied.join(', ')}` : 'up to date: no migration to apply'),
        Boolean(program.opts().json),
      );
    });

  const catalog = program.command('catalog').description('the catalog of integrations, products and plans');
  catalog
    .command('validate <file>')
    .description('check a catalog file without starting the server')
    .action((file: string) => {
      const content = loadCatalogFile(file);
      const products = content.integrations.flatMap((i) => i.products);
      const plans = products.flatMap((p) => p.plans).length;
      process.stdout.write(
        `${file} is valid: ${content.integrations.length} integration(s), ${products.length} product(s), ${plans} plan(s)\n`,
      );
    });

  const keys = program.command('keys').description("the keys Storehouse signs partner servers' tokens with (served at /.well-known/jwks)");
  admin(keys.command('list'), 'list the published signing keys', 'keys.list', (rows) => table(rows, ['kid', 'alg']));
  admin(
    keys.command('rotate'),
    'make a new signing key (the old one stays published until its tokens expire)',
    'keys.rotate',
    (r) => `signing with ${r.kid} now${r.retired.length ? `; retired ${r.retired.join(', ')}` : ''}`,
  );

  const teams = program.command('teams').description('teams');
  admin(
    teams.command('create').argument('<slug>').option('--name <name>', 'display name'),
    'create a team',
    'teams.create',
    (t) => `created team ${t.slug} (${t.id})`,
  );
  admin(teams.command('list'), 'list teams', 'teams.list', (rows) => table(rows, ['id', 'slug', 'name', 'createdAt']));
  admin(
    teams.command('quota').argument('<team>').argument('<quota>', 'most stores the team may hold, or "default"'),
    "set a team's store quota",
    'teams.quota',
    (q) => `${q.team}: ${q.quota === null ? 'the default store quota (STOREHOUSE_TEAM_STORE_QUOTA)' : `at most ${q.quota} stores`}`,
  );

  const cards = program
    .command('payment-methods')
    .alias('cards')
    .description('payment methods (test cards: 4242424242424242 succeeds, 4000000000000002 declines)');
  admin(
    cards.command('add').argument('<team>').argument('<card>', 'a test card number').option('--default', "make it the team's default"),
    'add a test card to a team',
    'payment-methods.add',
    (m) => `added ${m.brand} ending in ${m.last4} (${m.id})${m.isDefault ? ', the default' : ''}`,
  );
  admin(cards.command('list').argument('<team>'), "list a team's payment methods", 'payment-methods.list', (rows) =>
    table(rows, ['id', 'brand', 'last4', 'behavior', 'isDefault', 'createdAt']),
  );
  admin(
    cards.command('default').argument('<team>').argument('<id>'),
    "make a payment method the team's default",
    'payment-methods.default',
    (m) => `${m.id} is the default`,
  );
  admin(
    cards.command('remove').argument('<team>').argument('<id>'),
    'remove a payment method',
    'payment-methods.remove',
    (m) => `removed ${m.id}`,
  );

  admin(
    program.command('audit').argument('<team>').option('--limit <n>', 'how many events', '50'),
    "show a team's audit log, newest first",
    'audit.list',
    (rows) => table(rows, ['id', 'createdAt', 'actorId', 'action', 'targetType', 'targetId']),
  );

  const users = program.command('users').description('users');
  admin(
    users
      .command('create')
      .argument('<email>')
      .option('--name <name>', 'display name')
      .option('--username <username>', 'username (default: from the email)'),
    'create a user',
    'users.create',
    (u) => `created user ${u.email} (${u.id})`,
  );

  const members = program.command('members').description('team memberships and roles');
  admin(
    members
      .command('add')
      .argument('<team>', 'team slug or id')
      .argument('<user>', 'email, username or id; an unknown email creates the user')
      .addOption(
        new Option('--role <role>', 'role in the team')
          .choices([...TEAM_ROLES, ...TEAM_ROLES.map((r) => r.toLowerCase())])
          .default('MEMBER'),
      ),
    'add a member to a team, or change their role',
    'members.add',
    (m) => `${m.user} is ${m.role} of ${m.team}`,
  );
  admin(members.command('list').argument('<team>'), "list a team's members", 'members.list', (rows) =>
    table(rows, ['email', 'username', 'role', 'id']),
  );
  admin(
    members.command('remove').argument('<team>').argument('<user>'),
    'remove a member (their tokens for the team are revoked)',
    'members.remove',
    (m) => `${m.user} removed from ${m.team}`,
  );

  const tokens = program.command('tokens').description('access tokens (stored hashed; a value is shown once)');
  admin(
    tokens
      .command('create')
      .argument('<user>', 'email, username or id')
      .requiredOption('--team <team>', "the token's default team (slug or id)")
      .option('--name <name>', 'a label for the token', 'cli')
      .option('--expires-in-days <days>', 'expire the token after this many days'),
    'create a token and print its value (only this once)',
    'tokens.create',
    (t) => `created token ${t.id} for ${t.user} (default team ${t.team})${t.expiresAt ? `, expires ${t.expiresAt}` : ''}\n${t.value}`,
  );
  admin(
    tokens.command('list').option('--user <user>', "only this user's tokens"),
    'list tokens (never their values)',
    'tokens.list',
    (rows) => table(rows, ['id', 'name', 'userId', 'defaultTeamId', 'createdAt', 'lastUsedAt', 'expiresAt', 'revokedAt']),
  );
  admin(tokens.command('revoke').argument('<id>', 'token id (tok_...)'), 'revoke a token', 'tokens.revoke', (t) => `revoked ${t.id}`);

  admin(
    program
      .command('dashboard-link')
      .option('--user <user>', 'whom it signs in (email, username or id); by default the first owner')
      .option('--team <team>', 'the team it opens (slug or id); by default the oldest team'),
    'print a one-time sign-in link to the web dashboard (STOREHOUSE_DASHBOARD_LINK_MINUTES to use it)',
    'dashboard.link',
    (l) => `${l.url}\nsigns in ${l.user} (team ${l.team}) once, until ${l.expiresAt}`,
  );

  const installations = program
    .command('installations')
    .alias('install')
    .description("integration installations (Vercel's integration configurations)");
  admin(
    installations
      .command('create')
      .argument('<team>')
      .argument('<integration>', 'integration slug or id')
      .option('--by <user>', 'the installing user, who becomes an admin of the installation')
      .option('--another', 'install it again when the team has it (vercel integration add then asks for --installation-id)'),
    'install an integration for a team',
    'installations.create',
    (i) => `installed ${i.integration} for ${i.team}: ${i.id}`,
  );
  admin(installations.command('list').argument('<team>'), "list a team's installations", 'installations.list', (rows) =>
    table(rows, ['id', 'integration', 'installedBy', 'source', 'createdAt']),
  );

  const webhooks = program.command('webhooks').description("webhook deliveries to integrations' webhook URLs, every team's");
  admin(
    webhooks
      .command('list')
      .option('--integration <integration>', 'integration id or slug')
      .option('--status <status>', 'pending, delivered or failed')
      .option('--limit <n>', 'most deliveries shown (20)')
      .option('--until <next>', "the previous page's next"),
    'list webhook deliveries, newest first',
    'webhooks.list',
    (page) =>
      `${table(page.deliveries, ['id', 'type', 'integrationId', 'status', 'attempts', 'lastStatus', 'nextAttemptAt', 'createdAt'])}${
        page.next === null ? '' : `\nmore: --until ${page.next}`
      }`,
  );
  admin(
    webhooks.command('show').argument('<id>', 'event id (evt_...)'),
    'show a delivery: the event and every attempt',
    'webhooks.show',
    (d) =>
      [
        `${d.id}  ${d.type}  ${d.status}  (${d.attempts} attempt${d.attempts === 1 ? '' : 's'}${d.nextAttemptAt ? `, next at ${d.nextAttemptAt}` : ''})`,
        JSON.stringify(d.event, null, 2),
        table(d.history, ['number', 'startedAt', 'durationMs', 'status', 'error']),
      ].join('\n'),
  );
  admin(
    webhooks.command('redeliver').argument('<id>', 'event id (evt_...)'),
    'send a delivered or failed event again (same id and body)',
    'webhooks.redeliver',
    (d) => `${d.id} is pending again`,
  );

  return program;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (error) {
    const message =
      error instanceof CatalogError || error instanceof ConfigError || error instanceof DataDirLockedError || error instanceof AppError
        ? error.message
        : `${(error as Error).message}`;
    process.stderr.write(`storehouse: ${message}\n`);
    process.exitCode = error instanceof AppError ? 2 : 1;
  }
}

if (process.argv[1]?.endsWith('/cli.ts') || process.argv[1]?.endsWith('/cli.js') || process.argv[1]?.endsWith('/storehouse')) {
  await main();
}
