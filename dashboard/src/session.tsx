/** Who is signed in and which team they look at: every page reads it from this context. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Role, Team, User } from './types.ts';

export interface SessionState {
  user: User;
  teams: Team[];
  /** The team the pages show (sent as ?teamId=). */
  team: Team;
  role: Role;
  chooseTeam(id: string): void;
  signOut(): Promise<void>;
}

export const SessionContext = createContext<SessionState | undefined>(undefined);

export function useSession(): SessionState {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}
