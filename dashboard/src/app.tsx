/**
 * The dashboard: signing in (a one-time link's code, or an access token), then the layout and
 * the page the path names. Signing in sets an HttpOnly cookie; what this code keeps is only the
 * session's CSRF token, in memory.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken, setTeam, whenSignedOut } from './api.ts';
import { Link, match, navigate, usePath } from './router.tsx';
import { SessionContext, type SessionState } from './session.tsx';
import type { Session, Team } from './types.ts';
import { mayBill } from './types.ts';
import { ErrorNotice, Loading } from './ui.tsx';
import { SignIn } from './pages/sign-in.tsx';
import { Marketplace } from './pages/marketplace.tsx';
import { CreateStore } from './pages/create-store.tsx';
import { Stores } from './pages/stores.tsx';
import { StorePage } from './pages/store.tsx';
import { Projects, ProjectPage } from './pages/projects.tsx';
import { Billing } from './pages/billing.tsx';
import { TeamPage } from './pages/team.tsx';

const TEAM_KEY = 'storehouse.team';

/** The one-time code of a sign-in link (`#code=...`), taken out of the address at once so it stays in no history. */
function takeLinkCode(): string | undefined {
  const code = new URLSearchParams(location.hash.slice(1)).get('code') ?? undefined;
  if (code !== undefined) history.replaceState(null, '', location.pathname + location.search);
  return code;
}

export function App() {
  const [session, setSession] = useState<Session>();
  const [teams, setTeams] = useState<Team[]>([]);
  const [teamId, setTeamId] = useState<string>();
  const [state, setState] = useState<'starting' | 'signed-out' | 'signed-in'>('starting');
  const [error, setError] = useState<Error>();

  const signedIn = async (started: Session) => {
    setCsrfToken(started.csrfToken);
    const { teams: mine } = await api.get<{ teams: Team[] }>('/v2/teams', { noTeam: true });
    const remembered = sessionStorage.getItem(TEAM_KEY);
    const chosen = mine.find((team) => team.id === remembered)?.id ?? started.team.id;
    setTeam(chosen);
    setTeams(mine);
    setTeamId(chosen);
    setSession(started);
    setState('signed-in');
  };

  useEffect(() => {
    whenSignedOut(() => {
      setCsrfToken(undefined);
      setSession(undefined);
      setState('signed-out');
    });
    const code = takeLinkCode();
    const start = code
      ? api.post<Session>('/_storehouse/dashboard/session', { code }, { noTeam: true })
      : api.get<Session>('/_storehouse/dashboard/session', { noTeam: true });
    start.then(signedIn).catch((caught: Error) => {
      // No session yet is the sign-in page, not an error; a used or expired link says so there.
      if (!(caught instanceof ApiError && caught.status === 401 && !code)) setError(caught);
      setState('signed-out');
    });
  }, []);

  if (state === 'starting') return <Loading what="the dashboard" />;
  if (state === 'signed-out' || !session || !teamId) {
    return (
      <SignIn
        error={error}
        onSignedIn={(started) => {
          setError(undefined);
          return signedIn(started);
        }}
      />
    );
  }
  const team = teams.find((candidate) => candidate.id === teamId) ?? { ...session.team };
  const value: SessionState = {
    user: session.user,
    teams,
    team,
    role: team.membership?.role ?? session.team.role,
    chooseTeam: (id) => {
      sessionStorage.setItem(TEAM_KEY, id);
      setTeam(id);
      setTeamId(id);
    },
    signOut: async () => {
      await api.delete('/_storehouse/dashboard/session', undefined, { noTeam: true });
      setCsrfToken(undefined);
      setSession(undefined);
      setState('signed-out');
      navigate('/', true);
    },
  };
  return (
    <SessionContext.Provider value={value}>
      <Layout />
    </SessionContext.Provider>
  );
}

const NAV = [
  { href: '/', label: 'Marketplace', current: (path: string) => path === '/' || path.startsWith('/create') },
  { href: '/stores', label: 'Stores', current: (path: string) => path.startsWith('/stores') },
  { href: '/projects', label: 'Projects', current: (path: string) => path.startsWith('/projects') },
  { href: '/billing', label: 'Billing', current: (path: string) => path.startsWith('/billing') },
  { href: '/team', label: 'Team', current: (path: string) => path.startsWith('/team') },
];

function Layout() {
  const path = usePath();
  const first = useRef(true);
  // A new page moves the focus to its content, as a page load would (screen readers announce it);
  // before anything is painted, so it never takes the focus from a field someone already chose.
  useLayoutEffect(() => {
    if (first.current) first.current = false;
    else document.getElementById('main')?.focus();
  }, [path]);
  return (
    <SessionContext.Consumer>
      {(session) => (
        <>
          <a class="skip" href="#main">
            Skip to content
          </a>
          <header class="top">
            <Link href="/" class="brand">
              Storehouse
            </Link>
            <nav aria-label="Main">
              <ul>
                {NAV.map((item) =>
                  // Everyone sees the team's usage and balances; only owners and billing members its money.
                  item.href === '/billing' && !mayBill(session!.role) ? { ...item, label: 'Usage' } : item,
                ).map((item) => (
                  <li key={item.href}>
                    <Link href={item.href} aria-current={item.current(path) ? 'page' : undefined}>
                      {item.label}
                    </Link>
                  </li>
                ))}
              </ul>
            </nav>
            <TeamAndUser />
          </header>
          <main id="main" tabIndex={-1}>
            <Page key={session!.team.id} path={path} />
          </main>
        </>
      )}
    </SessionContext.Consumer>
  );
}

function TeamAndUser() {
  const [error, setError] = useState<Error>();
  return (
    <SessionContext.Consumer>
      {(session) => (
        <div class="who">
          <label for="team-select" class="visually-hidden">
            Team
          </label>
          <select
            id="team-select"
            value={session!.team.id}
            onChange={(event) => session!.chooseTeam((event.target as HTMLSelectElement).value)}
          >
            {session!.teams.map((team) => (
              <option key={team.id} value={team.id}>
                {team.name}
              </option>
            ))}
          </select>
          <span class="user" title={session!.user.email}>
            {session!.user.name ?? session!.user.username} <span class="muted">({session!.role.toLowerCase()})</span>
          </span>
          <button type="button" onClick={() => session!.signOut().catch(setError)}>
            Sign out
          </button>
          <ErrorNotice error={error} />
        </div>
      )}
    </SessionContext.Consumer>
  );
}

function Page({ path }: { path: string }) {
  if (path === '/') return <Marketplace />;
  let params = match('/create/:configuration/:product', path);
  if (params) return <CreateStore configurationId={params.configuration!} productId={params.product!} />;
  if (path === '/stores') return <Stores />;
  params = match('/stores/:id', path);
  if (params) return <StorePage id={params.id!} />;
  if (path === '/projects') return <Projects />;
  params = match('/projects/:id', path);
  if (params) return <ProjectPage id={params.id!} />;
  if (path === '/billing') return <Billing />;
  if (path === '/team') return <TeamPage />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page at this address. <Link href="/">Go to the marketplace</Link>.
      </p>
    </section>
  );
}
