/**
 * The audit log's ids tell a team nothing about other teams: they are random, and paging by one
 * works only within the team that owns it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { errorOf, startServer, type TestServer } from './helpers.ts';

describe('audit event ids', () => {
  let server: TestServer;
  let otherToken: string;
  const addCard = (token?: string) =>
    server.request('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber: '4242424242424242' }),
      ...(token && { token }),
    });
  const events = async (query = '', token?: string) => {
    const response = await server.request(`/_storehouse/audit${query}`, token ? { token } : {});
    assert.equal(response.status, 200, await response.clone().text());
    return ((await response.json()) as { events: Array<{ id: string; action: string }> }).events;
  };

  before(async () => {
    server = await startServer('embedded');
    const db = server.runtime.db;
    const team = await createTeam(db, { slug: 'other-team' });
    const user = await createUser(db, { email: 'other@example.com' });
    await setMember(db, team.id, user.id, 'OWNER');
    otherToken = (await createToken(db, { userId: user.id, teamId: team.id, name: 't' })).value;
  });
  after(() => server.close());

  test('are random, page within the team, and are unknown to other teams', async () => {
    // Interleaved activity of two teams.
    for (let i = 0; i < 3; i++) {
      assert.equal((await addCard()).status, 200);
      assert.equal((await addCard(otherToken)).status, 200);
    }
    const mine = await events();
    assert.ok(mine.length >= 3);
    for (const event of mine) assert.match(event.id, /^aud_[0-9a-f]{32}$/);
    assert.equal(new Set(mine.map((e) => e.id)).size, mine.length);
    // Paging: the events before the newest are the rest, in order.
    const rest = await events(`?before=${mine[0]!.id}`);
    assert.deepEqual(
      rest.map((e) => e.id),
      mine.slice(1).map((e) => e.id),
    );
    const page = await events(`?limit=1&before=${mine[1]!.id}`);
    assert.deepEqual(
      page.map((e) => e.id),
      [mine[2]!.id],
    );
    // Another team's id names nothing here.
    const theirs = await events('', otherToken);
    const refused = await errorOf(await server.request(`/_storehouse/audit?before=${theirs[0]!.id}`));
    assert.deepEqual([refused.status, refused.code], [400, 'bad_request']);
    assert.match(refused.message, /before/);
  });
});
