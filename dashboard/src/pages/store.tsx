import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link, navigate } from '../router.tsx';
import { useSession } from '../session.tsx';
import { mayChange, type Project, type Store } from '../types.ts';
import {
  ActionButton,
  Confirm,
  CopyButton,
  ENVIRONMENTS,
  EnvironmentsField,
  ErrorNotice,
  Show,
  StatusBadge,
  formatDate,
  useInterval,
  useAction,
  useLoad,
} from '../ui.tsx';
import { settling } from './stores.tsx';
import { StoreSettings } from './store-settings.tsx';

const storePath = (id: string) => `/v1/storage/stores/${encodeURIComponent(id)}`;

export function StorePage({ id }: { id: string }) {
  const store = useLoad(() => api.get<{ store: Store }>(storePath(id)).then((b) => b.store), [id]);
  useInterval(() => void store.reload(), 2000, store.data ? settling(store.data) : false);
  return (
    <section>
      <p class="crumbs">
        <Link href="/stores">Stores</Link>
      </p>
      <Show loaded={store} what="the store">
        {(data) => <StoreView store={data} reload={store.reload} />}
      </Show>
    </section>
  );
}

function StoreView({ store, reload }: { store: Store; reload: () => Promise<void> }) {
  const { role } = useSession();
  const writable = mayChange(role);
  return (
    <>
      <div class="page-head">
        <h1 class="with-icon">
          {store.product.iconUrl && <img src={store.product.iconUrl} alt="" width={28} height={28} />}
          {store.name}
        </h1>
        <StatusBadge status={store.status} />
      </div>
      <p class="muted">
        {store.product.integration.name} {store.product.name}
        {store.billingPlan && ` · ${store.billingPlan.name}${store.billingPlan.cost ? ` (${store.billingPlan.cost})` : ''}`}
        {store.createdAt && ` · created ${formatDate(store.createdAt)}`}
      </p>
      {store.notification && (
        <p class={`notice ${store.notification.level === 'error' ? 'error' : 'warn'}`}>
          <strong>{store.notification.title}</strong>
          {store.notification.message && `: ${store.notification.message}`}
        </p>
      )}
      {settling(store) && (
        <p role="status" class="muted">
          The store is being made; this page updates by itself.
        </p>
      )}
      {!writable && (
        <p class="notice">
          Your role ({role.toLowerCase()}) sees this store; revealing its secrets and changing it are for the team's owners, members and
          developers.
        </p>
      )}
      <Secrets store={store} writable={writable} />
      <Connections store={store} writable={writable} reload={reload} />
      {writable && <StoreSettings store={store} onSaved={reload} />}
      {writable && <DeleteStore store={store} />}
    </>
  );
}

interface RevealedSecret {
  name: string;
  value: string;
}

/** The URL-like secret a client connects with (POSTGRES_URL, REDIS_URL, ...), if there is one. */
const connectionStringOf = (secrets: RevealedSecret[]) =>
  secrets.find((secret) => /_URL$/.test(secret.name) && /^[a-z][a-z0-9+.-]*:\/\//i.test(secret.value)) ??
  secrets.find((secret) => /^[a-z][a-z0-9+.-]*:\/\//i.test(secret.value));

function Secrets({ store, writable }: { store: Store; writable: boolean }) {
  const [revealed, setRevealed] = useState<RevealedSecret[]>();
  const [error, setError] = useState<Error>();
  const reveal = async () => {
    setError(undefined);
    try {
      const body = await api.get<{ secrets: RevealedSecret[] }>(`/_storehouse/stores/${encodeURIComponent(store.id)}/secrets`);
      setRevealed(body.secrets);
    } catch (caught) {
      setError(caught as Error);
    }
  };
  const connection = revealed && connectionStringOf(revealed);
  return (
    <section aria-labelledby="secrets-title">
      <h2 id="secrets-title">Secrets</h2>
      {store.secrets.length === 0 ? (
        <p class="muted">{settling(store) ? 'The secrets come once the store is available.' : 'This store has no secrets.'}</p>
      ) : (
        <>
          {connection && (
            <div class="connection">
              <p class="label">Connection string</p>
              <code class="secret" data-secret="connection">
                {connection.value}
              </code>
              <CopyButton value={connection.value} label="Copy the connection string" />
            </div>
          )}
          <dl class="secrets">
            {store.secrets.map((secret) => {
              const value = revealed?.find((candidate) => candidate.name === secret.name)?.value;
              return (
                <div key={secret.name} data-secret-name={secret.name}>
                  <dt>{secret.name}</dt>
                  <dd>
                    {value === undefined ? (
                      <span class="muted">
                        <span aria-hidden="true">{'•'.repeat(Math.min(secret.length, 24))}</span>
                        <span class="visually-hidden">hidden, {secret.length} characters</span>
                      </span>
                    ) : (
                      <>
                        <code class="secret">{value}</code> <CopyButton value={value} label={`Copy ${secret.name}`} />
                      </>
                    )}
                  </dd>
                </div>
              );
            })}
          </dl>
          {writable &&
            (revealed ? (
              <button type="button" onClick={() => setRevealed(undefined)}>
                Hide secrets
              </button>
            ) : (
              <button type="button" onClick={reveal}>
                Reveal secrets
              </button>
            ))}
          <ErrorNotice error={error} title="Cannot reveal the secrets" />
        </>
      )}
    </section>
  );
}

function Connections({ store, writable, reload }: { store: Store; writable: boolean; reload: () => Promise<void> }) {
  return (
    <section aria-labelledby="projects-title">
      <h2 id="projects-title">Connected projects</h2>
      {store.projectsMetadata.length === 0 ? (
        <p class="muted">No project is connected: connecting one gives it the store's secrets as environment variables.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Project</th>
                <th scope="col">Environments</th>
                <th scope="col">Variables</th>
                {writable && <th scope="col">Action</th>}
              </tr>
            </thead>
            <tbody>
              {store.projectsMetadata.map((connection) => (
                <tr key={connection.id}>
                  <th scope="row">
                    <Link href={`/projects/${encodeURIComponent(connection.projectId)}`}>{connection.name}</Link>
                  </th>
                  <td>{connection.environments.join(', ')}</td>
                  <td>
                    <code>{connection.environmentVariables.join(', ')}</code>
                  </td>
                  {writable && (
                    <td>
                      <ActionButton
                        label={`Disconnect ${connection.name}`}
                        action={async () => {
                          await api.delete(`${storePath(store.id)}/connections/${encodeURIComponent(connection.id)}`);
                          await reload();
                        }}
                      >
                        Disconnect
                      </ActionButton>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {writable && <ConnectForm store={store} onConnected={reload} />}
    </section>
  );
}

function ConnectForm({ store, onConnected }: { store: Store; onConnected: () => Promise<void> }) {
  const projects = useLoad(() => api.get<{ projects: Project[] }>('/v9/projects', { query: { limit: 100 } }).then((b) => b.projects), []);
  const [projectId, setProjectId] = useState('');
  const [environments, setEnvironments] = useState<string[]>([...ENVIRONMENTS]);
  const [prefix, setPrefix] = useState('');
  const { busy, error, submit } = useAction();
  const connected = new Set(store.projectsMetadata.map((connection) => connection.projectId));
  const available = (projects.data ?? []).filter((project) => !connected.has(project.id));
  return (
    <form
      class="connect"
      onSubmit={submit(async () => {
        await api.post(`${storePath(store.id)}/connections`, {
          projectId,
          envVarEnvironments: environments,
          ...(prefix.trim() !== '' && { envVarPrefix: prefix.trim() }),
        });
        setProjectId('');
        setPrefix('');
        await onConnected();
      })}
    >
      <h3>Connect a project</h3>
      <ErrorNotice error={projects.error} title="Cannot list projects" />
      {projects.data && available.length === 0 ? (
        <p class="muted">
          Every project is connected already, or the team has none: <Link href="/projects">create one</Link>.
        </p>
      ) : (
        <>
          <label for="connect-project">Project</label>
          <select id="connect-project" value={projectId} onChange={(event) => setProjectId((event.target as HTMLSelectElement).value)}>
            <option value="">Choose a project</option>
            {available.map((project) => (
              <option key={project.id} value={project.id}>
                {project.name}
              </option>
            ))}
          </select>
          <EnvironmentsField chosen={environments} onChange={setEnvironments} />
          <label for="connect-prefix">Variable prefix (optional)</label>
          <input
            id="connect-prefix"
            value={prefix}
            placeholder="e.g. ANALYTICS_"
            onInput={(event) => setPrefix((event.target as HTMLInputElement).value)}
          />
          <ErrorNotice error={error} title="Not connected" />
          <button type="submit" disabled={busy || projectId === '' || environments.length === 0}>
            {busy ? 'Connecting…' : 'Connect'}
          </button>
        </>
      )}
    </form>
  );
}

function DeleteStore({ store }: { store: Store }) {
  const [open, setOpen] = useState(false);
  const projects = store.projectsMetadata;
  return (
    <section aria-labelledby="delete-title" class="danger-zone">
      <h2 id="delete-title">Delete</h2>
      <button type="button" class="danger" onClick={() => setOpen(true)}>
        Delete this store
      </button>
      <Confirm
        open={open}
        title={`Delete ${store.name}?`}
        confirm={`Delete ${store.name}`}
        onClose={() => setOpen(false)}
        onConfirm={async () => {
          await api.delete(`/v1/storage/stores/integration/${encodeURIComponent(store.id)}`, undefined, { query: { disconnect: true } });
          setOpen(false);
          navigate('/stores');
        }}
      >
        <p>
          This deletes the {store.product.integration.name} {store.product.name} store <strong>{store.name}</strong> and its data at the
          provider
          {store.secrets.length > 0 && <>, and its secrets ({store.secrets.map((s) => s.name).join(', ')})</>}.
        </p>
        {projects.length > 0 ? (
          <p>
            It is disconnected from {projects.length === 1 ? 'the project' : `${projects.length} projects`}{' '}
            <strong>{projects.map((p) => p.name).join(', ')}</strong>, whose variables from it are removed.
          </p>
        ) : (
          <p>No project is connected to it.</p>
        )}
        <p>This cannot be undone.</p>
      </Confirm>
    </section>
  );
}
