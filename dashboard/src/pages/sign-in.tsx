import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import type { Session } from '../types.ts';
import { ErrorNotice, useAction } from '../ui.tsx';

/**
 * Signing in with an access token (it is sent once, to make the session, and kept nowhere), or
 * with the one-time link the server prints (which signs in before this page shows).
 */
export function SignIn({ error, onSignedIn }: { error: Error | undefined; onSignedIn: (session: Session) => Promise<void> }) {
  const [token, setToken] = useState('');
  const { busy, error: failed, submit } = useAction();
  return (
    <main id="main" class="sign-in">
      <h1>Sign in to Storehouse</h1>
      <ErrorNotice error={error} title="Sign-in link" />
      <form
        onSubmit={submit(async () => {
          const session = await api.post<Session>('/_storehouse/dashboard/session', { token: token.trim() }, { noTeam: true });
          setToken('');
          await onSignedIn(session);
        })}
      >
        <label for="token">Access token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(event) => setToken((event.target as HTMLInputElement).value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="muted">
          A token of yours (<code>storehouse tokens create</code>), or the owner token the first start saved in the data dir. Or open the
          one-time link the server printed; <code>storehouse dashboard-link</code> prints a new one.
        </p>
        <ErrorNotice error={failed} />
        <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
