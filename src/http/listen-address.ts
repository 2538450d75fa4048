import type { AddressInfo } from 'node:net';

/**
 * The base URL a client calls a server listening on `address` at: a wildcard address (0.0.0.0,
 * ::, dual-stack) is listened on, not called, so IPv4 loopback stands in for it; an IPv6 host is
 * bracketed.
 */
export function callableUrl(address: Pick<AddressInfo, 'address' | 'port'>): string {
  const { address: host, port } = address;
  const callable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${callable}:${port}`;
}
