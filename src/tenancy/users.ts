import { isUniqueViolation, type MappedRow, type Queryable } from '../db/database.ts';
import { badRequest, conflict, notFound } from '../errors.ts';
import { newId } from '../ids.ts';

export interface User {
  id: string;
  email: string;
  username: string;
  name: string | null;
  createdAt: Date;
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;
const USERNAME = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;

export const toUser = (row: MappedRow): User => ({
  id: row.id,
  email: row.email,
  username: row.username,
  name: row.name,
  createdAt: row.created_at,
});

export async function createUser(db: Queryable, input: { email: string; name?: string; username?: string }): Promise<User> {
  const email = input.email.trim().toLowerCase();
  if (!EMAIL.test(email)) throw badRequest(`"${input.email}" is not an email address`);
  const username =
    input.username ??
    email
      .split('@')[0]!
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 48);
  if (!USERNAME.test(username)) throw badRequest('A username is 1 to 48 lowercase letters, digits and dashes');
  try {
    const { rows } = await db.query('INSERT INTO users (id, email, username, name) VALUES ($1, $2, $3, $4) RETURNING *', [
      newId(''),
      email,
      username,
      input.name ?? null,
    ]);
    return toUser(rows[0]!);
  } catch (error) {
    if (isUniqueViolation(error))
      throw conflict('user_exists', `A user with the email "${email}" or username "${username}" already exists`);
    throw error;
  }
}

/** A user by id, email or username. */
export async function findUser(db: Queryable, ref: string): Promise<User | undefined> {
  const { rows } = await db.query('SELECT * FROM users WHERE id = $1 OR email = lower($1) OR username = $1', [ref]);
  return rows[0] ? toUser(rows[0]) : undefined;
}

export async function getUser(db: Queryable, ref: string): Promise<User> {
  const user = await findUser(db, ref);
  if (!user) throw notFound('user', ref);
  return user;
}
