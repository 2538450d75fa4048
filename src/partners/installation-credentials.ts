/**
 * Rotating and revoking an installation's access tokens (docs/vercel-api.md §5.1): a partner that
 * believes a token leaked gets a new one, then retires the old, without the team reinstalling.
 * Both calls are authenticated by a live token of the installation plus the integration's client
 * secret, so a leaked token alone can neither mint itself a successor nor lock the partner out.
 * A rotation leaves the old token working (requests in flight keep working) until it is revoked.
 */
import { audit } from '../audit/audit-log.ts';
import type { Catalog } from '../catalog/catalog.ts';
import type { Database, Queryable } from '../db/database.ts';
import { conflict, forbidden } from '../errors.ts';
import { verifySecret } from '../secrets/secret-hash.ts';
import { mintInstallationToken, revokeInstallationToken } from './installation-tokens.ts';
import type { PartnerInstallation } from './marketplace-api.ts';

/** What both calls send besides the token: the integration's client secret (and, optionally, its id). */
export interface ClientCredentials {
  client_secret: string;
  client_id?: string;
}

/**
 * The caller knows the integration's client secret (and names its client id, if it names one).
 * Refused alike, with 403 as Vercel answers a wrong client secret (the SSO token exchange), when
 * the catalog gives the integration no secret: there is nothing the caller could prove.
 */
async function checkClientSecret(db: Queryable, installation: PartnerInstallation, credentials: ClientCredentials): Promise<void> {
  if (credentials.client_id !== undefined && credentials.client_id !== installation.integrationId) {
    throw forbidden(`client_id is not the client id of this installation's integration (${installation.integrationId})`);
  }
  const { rows } = await db.query<{ client_secret_hash: string | null }>('SELECT client_secret_hash FROM integrations WHERE id = $1', [
    installation.integrationId,
  ]);
  const hash = rows[0]?.client_secret_hash;
  if (!hash) {
    throw forbidden(
      `The integration ${installation.integrationId} has no client secret (the catalog's clientSecret), so its credentials cannot be rotated or revoked`,
    );
  }
  // Never echoed, never logged: only whether it matched.
  if (!(await verifySecret(credentials.client_secret, hash))) throw forbidden("client_secret is not the integration's client secret");
}

/** A new access token for the installation; the token that asked keeps working until it is revoked. */
export async function rotateCredential(db: Database, catalog: Catalog, installation: PartnerInstallation, credentials: ClientCredentials) {
  await checkClientSecret(db, installation, credentials);
  const token = await db.transaction(async (tx) => {
    const minted = await mintInstallationToken(tx, installation.installationId);
    await audit(tx, {
      teamId: installation.teamId,
      actorId: null,
      action: 'installation.credential_rotated',
      targetType: 'installation',
      targetId: installation.installationId,
      details: { by: 'provider', tokenId: minted.id, rotatedWith: installation.tokenId },
    });
    return minted;
  });
  return {
    access_token: token.value,
    // Installation tokens do not expire (docs/partner-api.md §2.2): 0 says so, as OAuth servers with such tokens do.
    expires_in: 0,
    scope: (catalog.integrationById(installation.integrationId)?.scopes ?? []).join(' '),
    token_type: 'oauth2-token' as const,
  };
}

/**
 * Revokes a token of the installation (the one the call authenticates with, even): it stops
 * working at once, on every node. A token the installation has no more (or never had) is
 * `already_revoked`; the installation's last live token is refused (409), as Vercel does.
 */
export async function revokeCredential(
  db: Database,
  installation: PartnerInstallation,
  credentials: ClientCredentials & { token: string },
) {
  await checkClientSecret(db, installation, credentials);
  const outcome = await db.transaction(async (tx) => {
    const result = await revokeInstallationToken(tx, installation.installationId, credentials.token);
    if ('revoked' in result) {
      await audit(tx, {
        teamId: installation.teamId,
        actorId: null,
        action: 'installation.credential_revoked',
        targetType: 'installation',
        targetId: installation.installationId,
        details: { by: 'provider', tokenId: result.revoked, revokedWith: installation.tokenId },
      });
    }
    return result;
  });
  if ('last' in outcome) {
    throw conflict(
      'last_credential',
      "The token is the installation's last live credential: rotate first, then revoke the old token with the new one",
    );
  }
  return 'revoked' in outcome ? { revoked: true, already_revoked: false } : { revoked: false, already_revoked: true };
}
