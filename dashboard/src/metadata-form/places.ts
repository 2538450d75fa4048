/**
 * Names for the codes a `vercel-region`, `multi-vercel-region` or `vercel-country` option may be
 * given as bare strings: Vercel's region ids (vercel.com/docs/regions) and ISO 3166 country codes.
 */

const REGIONS: Record<string, string> = {
  arn1: 'Stockholm, Sweden',
  bom1: 'Mumbai, India',
  cdg1: 'Paris, France',
  cle1: 'Cleveland, USA',
  cpt1: 'Cape Town, South Africa',
  dub1: 'Dublin, Ireland',
  dxb1: 'Dubai, UAE',
  fra1: 'Frankfurt, Germany',
  gru1: 'São Paulo, Brazil',
  hkg1: 'Hong Kong',
  hnd1: 'Tokyo, Japan',
  iad1: 'Washington, D.C., USA',
  icn1: 'Seoul, South Korea',
  kix1: 'Osaka, Japan',
  lhr1: 'London, United Kingdom',
  pdx1: 'Portland, USA',
  sfo1: 'San Francisco, USA',
  sin1: 'Singapore',
  syd1: 'Sydney, Australia',
  yul1: 'Montréal, Canada',
};

/** "Frankfurt, Germany (fra1)"; a region Storehouse does not know by name is its id. */
export function regionName(id: string): string {
  const name = REGIONS[id];
  return name ? `${name} (${id})` : id;
}

let countries: Intl.DisplayNames | undefined;

/** The country's English name from the runtime's own data (no table shipped); an unknown code is itself. */
export function countryName(code: string): string {
  try {
    countries ??= new Intl.DisplayNames(['en'], { type: 'region', fallback: 'code' });
    return countries.of(code.toUpperCase()) ?? code;
  } catch {
    // Not a well-formed region code (Intl throws a RangeError): show what the catalog says.
    return code;
  }
}
