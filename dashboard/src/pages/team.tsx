import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { useSession } from '../session.tsx';
import { Show, formatDate, useLoad } from '../ui.tsx';

interface AuditEvent {
  id: string;
  actorId: string | null;
  action: string;
  targetType: string;
  targetId: string;
  details: Record<string, unknown>;
  createdAt: number | string;
}

/** The team, the signed-in member's role, and its audit log (filtered by action, target and actor). */
export function TeamPage() {
  const { team, role, user } = useSession();
  const events = useLoad(
    () => api.get<{ events: AuditEvent[] }>('/_storehouse/audit', { query: { limit: 200 } }).then((b) => b.events),
    [],
  );
  const [action, setAction] = useState('');
  const [target, setTarget] = useState('');
  const [actor, setActor] = useState('');
  return (
    <section>
      <h1>{team.name}</h1>
      <p>
        <span class="label">Slug:</span> <code>{team.slug}</code> · <span class="label">You:</span> {user.email} ({role.toLowerCase()})
      </p>
      <h2>Audit log</h2>
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
          <input value={actor} placeholder="user id" onInput={(event) => setActor((event.target as HTMLInputElement).value)} />
        </label>
      </fieldset>
      <Show loaded={events} what="the audit log">
        {(list) => {
          const shown = list.filter(
            (event) =>
              event.action.includes(action.trim()) &&
              (target.trim() === '' || event.targetId.includes(target.trim()) || event.targetType.includes(target.trim())) &&
              (actor.trim() === '' || (event.actorId ?? 'system').includes(actor.trim())),
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
                      <td>{event.actorId ?? 'system (CLI)'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Show>
      <p class="muted">
        Members, roles and access tokens are managed with the CLI (<code>storehouse members</code>, <code>storehouse tokens</code>): the API
        has no calls for them yet.
      </p>
    </section>
  );
}
