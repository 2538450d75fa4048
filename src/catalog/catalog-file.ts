import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import { catalogFileSchema, type CatalogFile, type CatalogPlan, type CatalogProduct } from './catalog-schema.ts';
import { STOREHOUSE_VERSION } from '../package-root.ts';
import { createAjv, SUPPORTED_PAIRS } from './metadata-schema.ts';

/** A catalog file that cannot be used; the message names the file, each bad field and what was expected. */
export class CatalogError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`Invalid catalog ${file}:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'CatalogError';
  }
}

// Compiled on first use: a start whose catalog is unchanged never needs it.
let compiled: { ajv: ReturnType<typeof createAjv>; validateFile: ValidateFunction<CatalogFile> } | undefined;
function validator() {
  if (!compiled) {
    const ajv = createAjv();
    compiled = { ajv, validateFile: ajv.compile<CatalogFile>(catalogFileSchema) };
  }
  return compiled;
}

const at = (path: string) => path || '/';

function describe(error: ErrorObject): string {
  const path = at(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return `${path}: missing required field "${params.missingProperty}"`;
    case 'additionalProperties':
      return `${path}: unknown field "${params.additionalProperty}"`;
    case 'enum':
      return `${path}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${path}: must be ${JSON.stringify(params.allowedValue)}`;
    case 'anyOf':
      return `${path}: does not match any of the allowed forms`;
    default:
      return `${path}: ${error.message}`;
  }
}

/** Ajv reports every failing branch of an anyOf; the anyOf's own error says it better. */
function schemaProblems(errors: ErrorObject[]): string[] {
  const anyOfPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => `${e.schemaPath}/`);
  const kept = errors.filter((e) => e.keyword !== 'if' && !anyOfPaths.some((prefix) => e.schemaPath.startsWith(prefix)));
  return [...new Set(kept.map(describe))];
}

const cents = (amount: string) => Math.round(Number(amount) * 100);

function checkPlan(plan: CatalogPlan, path: string, problems: string[]) {
  if (plan.type === 'prepayment') {
    if (!plan.paymentMethodRequired) problems.push(`${path}/paymentMethodRequired: a prepayment plan needs a payment method; must be true`);
    if (plan.minimumAmount === undefined) problems.push(`${path}: missing required field "minimumAmount" (prepayment plans)`);
    if (plan.maximumAmount === undefined) problems.push(`${path}: missing required field "maximumAmount" (prepayment plans)`);
    if (plan.minimumAmount !== undefined && cents(plan.minimumAmount) < 50) {
      problems.push(`${path}/minimumAmount: must be at least "0.50", the smallest prepayment`);
    }
    if (plan.minimumAmount !== undefined && plan.maximumAmount !== undefined && cents(plan.minimumAmount) > cents(plan.maximumAmount)) {
      problems.push(`${path}/maximumAmount: must not be less than minimumAmount`);
    }
  } else {
    for (const field of ['minimumAmount', 'maximumAmount'] as const) {
      if (plan[field] !== undefined) problems.push(`${path}/${field}: only prepayment plans have a ${field}`);
    }
  }
  if (!plan.paymentMethodRequired && plan.preauthorizationAmount !== undefined) {
    problems.push(`${path}/preauthorizationAmount: only plans with paymentMethodRequired: true are pre-authorized`);
  }
}

function checkMetadataSchema(product: CatalogProduct, path: string, problems: string[]) {
  const schema = product.metadataSchema;
  const names = Object.keys(schema.properties);
  for (const [name, property] of Object.entries(schema.properties)) {
    const pair = `${property.type}:${property['ui:control']}`;
    if (!SUPPORTED_PAIRS.includes(pair)) {
      problems.push(
        `${path}/metadataSchema/properties/${name}: type "${property.type}" with ui:control "${property['ui:control']}" is not supported; ` +
          `supported pairs are ${SUPPORTED_PAIRS.join(', ')}`,
      );
      continue;
    }
    if (property.default !== undefined) {
      const { ajv } = validator();
      const validate = ajv.compile(property);
      if (!validate(property.default)) {
        problems.push(
          `${path}/metadataSchema/properties/${name}/default: does not satisfy its own property (${ajv.errorsText(validate.errors, { dataVar: 'default' })})`,
        );
      }
    }
  }
  for (const list of ['required', 'ui:order'] as const) {
    (schema[list] ?? []).forEach((name, index) => {
      if (!names.includes(name)) problems.push(`${path}/metadataSchema/${list}/${index}: "${name}" is not a property of the schema`);
    });
  }
}

/** Rules JSON Schema cannot say: unique ids and slugs, plan amounts, metadata defaults. */
function semanticProblems(catalog: CatalogFile): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const unique = (key: string, path: string, what: string) => {
    const first = seen.get(key);
    if (first) problems.push(`${path}: ${what} is already used at ${first}`);
    else seen.set(key, path);
  };
  catalog.integrations.forEach((integration, i) => {
    const ipath = `/integrations/${i}`;
    unique(`integration-id:${integration.id}`, `${ipath}/id`, `id "${integration.id}"`);
    unique(`integration-slug:${integration.slug}`, `${ipath}/slug`, `slug "${integration.slug}"`);
    // One partner server per integration: it is the one the installation is announced to, and
    // the integration's id is its one client id.
    const partnerUrls = new Set(integration.products.filter((p) => p.provider.type === 'http').map((p) => String(p.provider.url)));
    if (partnerUrls.size > 1) {
      problems.push(
        `${ipath}/products: the products of one integration must name one partner server, not ${[...partnerUrls].join(' and ')}`,
      );
    }
    integration.products.forEach((product, p) => {
      const ppath = `${ipath}/products/${p}`;
      unique(`product-id:${product.id}`, `${ppath}/id`, `product id "${product.id}"`);
      unique(`product-slug:${integration.id}:${product.slug}`, `${ppath}/slug`, `product slug "${product.slug}"`);
      checkMetadataSchema(product, ppath, problems);
      product.plans.forEach((plan, b) => {
        const bpath = `${ppath}/plans/${b}`;
        unique(`plan:${product.id}:${plan.id}`, `${bpath}/id`, `plan id "${plan.id}"`);
        checkPlan(plan, bpath, problems);
      });
    });
  });
  return problems;
}

/** Validates parsed catalog content; throws CatalogError naming every problem. */
export function validateCatalog(content: unknown, file: string): CatalogFile {
  const { validateFile } = validator();
  if (!validateFile(content)) throw new CatalogError(file, schemaProblems(validateFile.errors ?? []));
  const problems = semanticProblems(content);
  if (problems.length > 0) throw new CatalogError(file, problems);
  return content;
}

export function readCatalogSource(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new CatalogError(file, [`cannot read the file: ${(error as Error).message}`]);
  }
}

/** Reads and validates a catalog file, YAML or JSON (YAML parses both). */
export function loadCatalogFile(file: string, source = readCatalogSource(file)): CatalogFile {
  const document = parseDocument(source, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new CatalogError(
      file,
      document.errors.map((error) => `not valid YAML or JSON: ${error.message}`),
    );
  }
  return validateCatalog(document.toJS(), file);
}

/**
 * Identifies a catalog and the rules it was checked against: its bytes, the catalog schema and
 * the Storehouse version. Equal fingerprints mean an earlier start already validated and synced
 * exactly this.
 */
export function catalogFingerprint(source: string): string {
  return createHash('sha256')
    .update(STOREHOUSE_VERSION)
    .update('\0')
    .update(JSON.stringify(catalogFileSchema))
    .update('\0')
    .update(source)
    .digest('hex');
}
