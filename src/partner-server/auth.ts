/**
 * How the reference partner authenticates the marketplace, exactly as a real integration
 * provider does (docs/partner-api.md §2.1): every call carries an OIDC JWT, RS256,
 * verified against the marketplace's JWKS, with the expected issuer and the integration's client
 * id as audience. Unlike the official example, the issuer and JWKS URL are configurable (§0.1),
 * so the partner trusts whichever Storehouse it is pointed at.
 *
 * Then, per endpoint (§1's table): "User" endpoints need a user token, `user_role: USER` is
 * read-only, and a token only speaks for its own installation.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { AppError, forbidden, unauthorized } from '../errors.ts';

/** The claims of a verified token (§2.1): user-style tokens add `user_id` and `user_role`. */
export interface PartnerClaims extends JWTPayload {
  account_id?: string | null;
  installation_id?: string | null;
  user_id?: string;
  user_role?: 'ADMIN' | 'USER';
  user_email?: string;
  user_name?: string;
  type?: string;
}

/** Who may call an endpoint (§1's Auth column): a user only, or a user or the system alike. */
export type AuthKind = 'user' | 'any';

export interface VerifierOptions {
  jwksUrl: string;
  issuer: string;
  /** The integration's client id (`oac_...`): the audience every token must name. */
  clientId: string;
}

export type Verify = (authorization: string | undefined) => Promise<PartnerClaims>;

/**
 * A verifier of `Authorization` headers. jose fetches the key set on first use, caches it, and
 * fetches it again when a token names a key it does not hold (a rotation at the marketplace).
 */
export function tokenVerifier(options: VerifierOptions): Verify {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl));
  return async (authorization) => {
    // The example matches `^bearer (.+)$` case-insensitively; so does this.
    const token = /^bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (!token) throw unauthorized("A bearer token (the marketplace's OIDC JWT) is required");
    try {
      const { payload } = await jwtVerify<PartnerClaims>(token, jwks, {
        issuer: options.issuer,
        audience: options.clientId,
        algorithms: ['RS256'],
      });
      return payload;
    } catch (error) {
      // The key set could not be had: not the token's fault, and worth a retry (503), not a 401.
      if (jwksUnavailable(error)) {
        throw new AppError(
          503,
          'jwks_unavailable',
          `Cannot fetch the marketplace's signing keys from ${options.jwksUrl}: ${(error as Error).message}`,
        );
      }
      throw unauthorized(`The token is not valid: ${(error as Error).message}`);
    }
  };
}

/**
 * Whether a verification failed for want of the key set: a network error (not jose's), a
 * timeout, or jose's generic error, which it raises only for a key set answer that is not a 200
 * with JSON. A key set without the token's key is the token's problem (JWKSNoMatchingKey, 401).
 */
function jwksUnavailable(error: unknown): boolean {
  if (!(error instanceof errors.JOSEError)) return true;
  return error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error.code === 'ERR_JOSE_GENERIC';
}

/**
 * What a verified token may do here (403 otherwise): speak for the path's installation only; on
 * a "User" endpoint, be a user token; change nothing when its user's role is USER (read-only,
 * §2.1). `installationId` is undefined on the one endpoint not under an installation (product
 * plans), which is asked before any installation exists (`installation_id: null`).
 */
export function authorize(claims: PartnerClaims, kind: AuthKind, method: string, installationId: string | undefined): void {
  if (installationId !== undefined && claims.installation_id !== installationId) {
    throw forbidden(`The token is for installation ${claims.installation_id ?? '(none)'}, not ${installationId}`);
  }
  const isUser = typeof claims.user_id === 'string' && typeof claims.user_role === 'string';
  if (kind === 'user' && !isUser)
    throw forbidden('This endpoint needs a user token (user_id and user_role claims); a system token was sent');
  if (isUser && method !== 'GET' && claims.user_role !== 'ADMIN') {
    throw forbidden(`User ${claims.user_id} has the role ${claims.user_role}, which is read-only`);
  }
}
