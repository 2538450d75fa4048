import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Link, navigate } from '../router.tsx';
import { useSession } from '../session.tsx';
import { mayChange, type EnvVar, type Project } from '../types.ts';
import { CopyButton, ENVIRONMENTS, EnvironmentsField, ErrorNotice, Show, useAction, useLoad } from '../ui.tsx';

const projectPath = (id: string) => `/v9/projects/${encodeURIComponent(id)}`;

export function Projects() {
  const { role } = useSession();
  const projects = useLoad(() => api.get<{ projects: Project[] }>('/v10/projects', { query: { limit: 100 } }).then((b) => b.projects), []);
  return (
    <section>
      <h1>Projects</h1>
      <Show loaded={projects} what="projects">
        {(list) =>
          list.length === 0 ? (
            <p>No projects yet.</p>
          ) : (
            <ul class="list">
              {list.map((project) => (
                <li key={project.id}>
                  <Link href={`/projects/${encodeURIComponent(project.id)}`}>{project.name}</Link>
                </li>
              ))}
            </ul>
          )
        }
      </Show>
      {mayChange(role) && <CreateProject />}
    </section>
  );
}

function CreateProject() {
  const [name, setName] = useState('');
  const { busy, error, submit } = useAction();
  return (
    <form
      class="inline-form"
      onSubmit={submit(async () => {
        const project = await api.post<Project>('/v11/projects', { name: name.trim() });
        navigate(`/projects/${encodeURIComponent(project.id)}`);
      })}
    >
      <h2>Create a project</h2>
      <label for="project-name">Project name</label>
      <input id="project-name" value={name} onInput={(event) => setName((event.target as HTMLInputElement).value)} />
      <ErrorNotice error={error} title="Not created" />
      <button type="submit" disabled={busy || name.trim() === ''}>
        Create project
      </button>
    </form>
  );
}

/** A project's variables by environment: values hidden until asked for, one at a time. */
export function ProjectPage({ id }: { id: string }) {
  const { role } = useSession();
  const project = useLoad(() => api.get<Project>(projectPath(id)), [id]);
  const envs = useLoad(() => api.get<{ envs: EnvVar[] }>(`/v10/projects/${encodeURIComponent(id)}/env`).then((b) => b.envs), [id]);
  return (
    <section>
      <p class="crumbs">
        <Link href="/projects">Projects</Link>
      </p>
      <Show loaded={project} what="the project">
        {(data) => <h1>{data.name}</h1>}
      </Show>
      <Show loaded={envs} what="environment variables">
        {(list) => (
          <>
            {ENVIRONMENTS.map((environment) => {
              const here = list.filter((env) => [env.target ?? []].flat().includes(environment));
              return (
                <section key={environment} aria-labelledby={`env-${environment}`}>
                  <h2 id={`env-${environment}`}>{environment[0]!.toUpperCase() + environment.slice(1)}</h2>
                  {here.length === 0 ? (
                    <p class="muted">No variables.</p>
                  ) : (
                    <dl class="secrets">
                      {here.map((env) => (
                        <EnvRow key={env.id} projectId={id} env={env} mayReveal={mayChange(role)} />
                      ))}
                    </dl>
                  )}
                </section>
              );
            })}
          </>
        )}
      </Show>
      {mayChange(role) && <AddVariable projectId={id} onAdded={envs.reload} />}
    </section>
  );
}

function EnvRow({ projectId, env, mayReveal }: { projectId: string; env: EnvVar; mayReveal: boolean }) {
  const [value, setValue] = useState<string | undefined>(env.type === 'plain' ? env.value : undefined);
  const [error, setError] = useState<Error>();
  return (
    <div>
      <dt>{env.key}</dt>
      <dd>
        {value !== undefined ? (
          <>
            <code class="secret">{value}</code> <CopyButton value={value} label={`Copy ${env.key}`} />
          </>
        ) : env.type === 'sensitive' ? (
          <span class="muted">Sensitive: never shown</span>
        ) : (
          <>
            <span class="muted">hidden</span>{' '}
            {mayReveal && (
              <button
                type="button"
                aria-label={`Reveal ${env.key}`}
                onClick={async () => {
                  setError(undefined);
                  try {
                    const read = await api.get<EnvVar>(`/v1/projects/${encodeURIComponent(projectId)}/env/${encodeURIComponent(env.id)}`);
                    setValue(read.value ?? '');
                  } catch (caught) {
                    setError(caught as Error);
                  }
                }}
              >
                Reveal
              </button>
            )}
          </>
        )}
        <ErrorNotice error={error} />
      </dd>
    </div>
  );
}

function AddVariable({ projectId, onAdded }: { projectId: string; onAdded: () => Promise<void> }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [targets, setTargets] = useState<string[]>([...ENVIRONMENTS]);
  const { busy, error, submit } = useAction();
  return (
    <form
      class="inline-form"
      onSubmit={submit(async () => {
        await api.post(`/v10/projects/${encodeURIComponent(projectId)}/env`, {
          key: key.trim(),
          value,
          type: 'encrypted',
          target: targets,
        });
        setKey('');
        setValue('');
        await onAdded();
      })}
    >
      <h2>Add a variable</h2>
      <label for="env-key">Name</label>
      <input id="env-key" value={key} onInput={(event) => setKey((event.target as HTMLInputElement).value)} />
      <label for="env-value">Value</label>
      <input
        id="env-value"
        type="password"
        autoComplete="off"
        value={value}
        onInput={(event) => setValue((event.target as HTMLInputElement).value)}
      />
      <EnvironmentsField chosen={targets} onChange={setTargets} />
      <ErrorNotice error={error} title="Not added" />
      <button type="submit" disabled={busy || key.trim() === '' || targets.length === 0}>
        Add variable
      </button>
    </form>
  );
}
