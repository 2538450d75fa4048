import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { useSession } from '../session.tsx';
import type { Role } from '../types.ts';
import { WebhookDeliveries } from './webhook-deliveries.tsx';
import { ActionButton, CopyButton, ErrorNotice, type Loaded, Show, formatDate, useAction, useLoad } from '../ui.tsx';

const ROLES: Role[] = ['OWNER', 'MEMBER', 'DEVELOPER', 'BILLING', 'VIEWER'];

interface Member {
  uid: string;
  email: string;
  username: string;
  name: string | null;
  role: Role;
}

interface AuthToken {
  id: string;
  name: string;
  activeAt: number;
  createdAt: number;
  expiresAt?: number;
  revokedAt?: number;
  scopes?: Array<{ teamId: string }>;
}

interface AuditEvent {
  id: string;
  actorId: string | null;
  action: string;
  targetType: string;
  targetId: string;
  details: Record<string, unknown>;
  createdAt: number | string;
}

/** The team, the signed-in member's role, and (for its owners, who alone may read it) its audit log. */
export function TeamPage() {
  const { team, role, user } = useSession();
  const members = useLoad(
    () => api.get<{ members: Member[] }>(`/v3/teams/${encodeURIComponent(team.id)}/members`, { noTeam: true }).then((b) => b.members),
    [team.id],
  );
  const emails = new Map((members.data ?? []).map((member) => [member.uid, member.email]));
  return (
    <section>
      <h1>{team.name}</h1>
      <p>
        <span class="label">Slug:</span> <code>{team.slug}</code> · <span class="label">You:</span> {user.email} ({role.toLowerCase()})
      </p>
      <Members members={members} />
      {role !== 'VIEWER' && <Tokens />}
      {role === 'OWNER' && <WebhookDeliveries />}
      <h2>Audit log</h2>
      {role === 'OWNER' ? <AuditLog emails={emails} /> : <p class="muted">The audit log is for the team's owners.</p>}
    </section>
  );
}

/** The team's audit log, filtered by action, target and actor (by id or email: `emails` names the members). */
function AuditLog({ emails }: { emails: Map<string, string> }) {
  const events = useLoad(
    () => api.get<{ events: AuditEvent[] }>('/_storehouse/audit', { query: { limit: 200 } }).then((b) => b.events),
    [],
  );
  const [action, setAction] = useState('');
  const [target, setTarget] = useState('');
  const [actor, setActor] = useState('');
  return (
    <>
      <fieldset class="filters">
        <legend>Filter the audit log</legend>
        <label>
          Action
          <input value={action} placeholder="store." onInput={(event) => setAction((event.target as HTMLInputElement).value)} />
        </label>
        <label>
          Target
          <input value={target} placeholder="id or type" onInput={(event) => setTarget((event.target as HTMLInputElement).value)} />
        </label>
        <label>
          Actor
          <input value={actor} placeholder="email or user id" onInput={(event) => setActor((event.target as HTMLInputElement).value)} />
        </label>
      </fieldset>
      <Show loaded={events} what="the audit log">
        {(list) => {
          const shown = list.filter(
            (event) =>
              event.action.includes(action.trim()) &&
              (target.trim() === '' || event.targetId.includes(target.trim()) || event.targetType.includes(target.trim())) &&
              (actor.trim() === '' || `${event.actorId ?? 'system'} ${emails.get(event.actorId ?? '') ?? ''}`.includes(actor.trim())),
          );
          return shown.length === 0 ? (
            <p class="muted">No events{list.length > 0 ? ' match these filters' : ''}.</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">Actor</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((event) => (
                    <tr key={event.id}>
                      <td>{formatDate(event.createdAt)}</td>
                      <td>
                        <code>{event.action}</code>
                      </td>
                      <td>
                        {event.targetType} <code>{event.targetId}</code>
                      </td>
                      <td>{event.actorId === null ? 'system (CLI)' : (emails.get(event.actorId) ?? event.actorId)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Show>
    </>
  );
}

/** The team's members; an owner changes their roles and removes them. */
function Members({ members }: { members: Loaded<Member[]> }) {
  const { team, role, user } = useSession();
  const [error, setError] = useState<Error>();
  const owner = role === 'OWNER';
  const memberPath = (uid: string) => `/v1/teams/${encodeURIComponent(team.id)}/members/${encodeURIComponent(uid)}`;
  return (
    <section aria-labelledby="members-title">
      <h2 id="members-title">Members</h2>
      <ErrorNotice error={error} title="Not changed" />
      <Show loaded={members} what="members">
        {(list) => (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Member</th>
                  <th scope="col">Role</th>
                  {owner && <th scope="col">Action</th>}
                </tr>
              </thead>
              <tbody>
                {list.map((member) => (
                  <tr key={member.uid}>
                    <th scope="row">
                      {member.name ?? member.username} <span class="muted">{member.email}</span>
                      {member.uid === user.id && <span class="badge ok">you</span>}
                    </th>
                    <td>
                      {owner ? (
                        <label>
                          <span class="visually-hidden">Role of {member.email}</span>
                          <select
                            value={member.role}
                            onChange={async (event) => {
                              setError(undefined);
                              try {
                                await api.patch(
                                  memberPath(member.uid),
                                  { role: (event.target as HTMLSelectElement).value },
                                  { noTeam: true },
                                );
                              } catch (caught) {
                                setError(caught as Error);
                              }
                              await members.reload();
                            }}
                          >
                            {ROLES.map((candidate) => (
                              <option key={candidate} value={candidate}>
                                {candidate.toLowerCase()}
                              </option>
                            ))}
                          </select>
                        </label>
                      ) : (
                        member.role.toLowerCase()
                      )}
                    </td>
                    {owner && (
                      <td>
                        {member.uid !== user.id && (
                          <ActionButton
                            class="danger"
                            label={`Remove ${member.email}`}
                            action={async () => {
                              await api.delete(memberPath(member.uid), undefined, { noTeam: true });
                              await members.reload();
                            }}
                          >
                            Remove
                          </ActionButton>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Show>
      <p class="muted">
        New members are added by an operator: <code>storehouse members add {team.slug} someone@example.com --role member</code>.
      </p>
    </section>
  );
}

/** The signed-in person's own access tokens: a new one's value is shown once, here, and never again. */
function Tokens() {
  const tokens = useLoad(() => api.get<{ tokens: AuthToken[] }>('/v6/user/tokens').then((b) => b.tokens), []);
  const [name, setName] = useState('');
  const [days, setDays] = useState('');
  const [created, setCreated] = useState<{ name: string; value: string }>();
  const { busy, error, submit } = useAction();
  return (
    <section aria-labelledby="tokens-title">
      <h2 id="tokens-title">Your access tokens</h2>
      {created && (
        <div class="notice ok" role="status">
          <p>
            <strong>Token {created.name} created.</strong> Copy it now: it is not shown again.
          </p>
          <code class="secret" data-new-token>
            {created.value}
          </code>{' '}
          <CopyButton value={created.value} label="Copy the new token" />
        </div>
      )}
      <Show loaded={tokens} what="tokens">
        {(list) => (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {list.map((token) => (
                  <tr key={token.id}>
                    <th scope="row">{token.name}</th>
                    <td>{formatDate(token.createdAt)}</td>
                    <td>{formatDate(token.activeAt)}</td>
                    <td>{token.expiresAt ? formatDate(token.expiresAt) : 'never'}</td>
                    <td>
                      {token.revokedAt ? (
                        <span class="muted">revoked</span>
                      ) : (
                        <ActionButton
                          class="danger"
                          label={`Revoke ${token.name}`}
                          action={async () => {
                            await api.delete(`/v3/user/tokens/${encodeURIComponent(token.id)}`);
                            await tokens.reload();
                          }}
                        >
                          Revoke
                        </ActionButton>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Show>
      <form
        class="inline-form"
        onSubmit={submit(async () => {
          const expiresAt = days.trim() === '' ? undefined : Date.now() + Number(days) * 86_400_000;
          const body = await api.post<{ token: AuthToken; bearerToken: string }>('/v3/user/tokens', { name: name.trim(), expiresAt });
          setCreated({ name: body.token.name, value: body.bearerToken });
          setName('');
          await tokens.reload();
        })}
      >
        <h3>Create a token</h3>
        <label for="token-name">Token name</label>
        <input id="token-name" value={name} onInput={(event) => setName((event.target as HTMLInputElement).value)} />
        <label for="token-days">Expires after (days, optional)</label>
        <input id="token-days" type="number" min={1} value={days} onInput={(event) => setDays((event.target as HTMLInputElement).value)} />
        <ErrorNotice error={error} title="Not created" />
        <button type="submit" disabled={busy || name.trim() === ''}>
          Create token
        </button>
      </form>
    </section>
  );
}
