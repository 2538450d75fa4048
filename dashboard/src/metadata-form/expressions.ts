/**
 * Vercel's `{expr}` values (`ui:hidden`, `ui:disabled`, `ui:read-only`, `ui:description`,
 * `ui:formatted-value`, an option's `hidden`/`disabled`), evaluated without `eval`: a small
 * parser and interpreter for a JavaScript expression subset.
 *
 * Vercel does not document the expression language: the REST API reference and @vercel/sdk
 * type these values only as `{ expr: string }` (vercel-api.md, GET
 * /v1/integrations/configuration/{id}/products), the partner guide says "their language is not
 * documented" (partner-api.md §4), and the marketplace product guide
 * (vercel.com/docs/integrations/create-integration/marketplace-product) lists the `ui:*` keys
 * without one; the Vercel CLI (58.10, util/integration/format-schema-help.ts) treats an
 * expression as "not hidden". So the choice here is the smallest language that reads as
 * JavaScript to a catalog author and covers what a form needs, documented in full:
 *
 * - names: `metadata` is the form's current values, the object that is sent as the store's
 *   `metadata` (numbers as numbers, multi-selects as arrays), so `metadata.tier == 'pro'`;
 *   any other name is an error;
 * - literals: numbers, 'single' or "double" quoted strings, true, false, null, undefined, and
 *   array literals `['a', 'b']`;
 * - property access `a.b` and `a[expr]` (own properties only, and `length` of arrays and
 *   strings), a missing one is undefined; `.includes(x)` on arrays and strings;
 * - operators by JavaScript precedence: `!` and unary `-`; `* / %`; `+ -` (`+` joins when either
 *   side is a string); `< <= > >=` (two numbers or two strings, else false); `== !=` and
 *   `=== !==` (both strict, except that null and undefined are equal under `==`); `&&`, `||`
 *   (JavaScript truthiness, short-circuit, yielding an operand); `c ? a : b`; parentheses.
 *
 * An expression that does not parse or fails to evaluate (an unknown name, a call of anything
 * but includes) counts as false for a condition and as no text for a description or formatted
 * value, with one console warning per expression: a form with a bad catalog entry still renders.
 */

export type Value = unknown;
export interface Scope {
  metadata: Record<string, unknown>;
}

export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly source: string,
  ) {
    super(`${message} in expression ${JSON.stringify(source)}`);
    this.name = 'ExpressionError';
  }
}

type Node =
  | { kind: 'literal'; value: Value }
  | { kind: 'array'; items: Node[] }
  | { kind: 'name'; name: string }
  | { kind: 'member'; object: Node; property: Node }
  | { kind: 'call'; object: Node; method: string; args: Node[] }
  | { kind: 'unary'; op: '!' | '-'; operand: Node }
  | { kind: 'binary'; op: string; left: Node; right: Node }
  | { kind: 'logical'; op: '&&' | '||'; left: Node; right: Node }
  | { kind: 'conditional'; test: Node; then: Node; otherwise: Node };

type Token = { type: 'number' | 'string' | 'name' | 'punct'; text: string; value?: Value; at: number };

/** Longest first, so `===` is not read as `==` and `=`. */
const PUNCTUATORS = '=== !== == != <= >= && || < > ! + - * / % ? : . ( ) [ ] ,'.split(' ');
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(source[i + 1] ?? ''))) {
      const match = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(source.slice(i))!;
      i += match[0].length;
      tokens.push({ type: 'number', text: match[0], value: Number(match[0]), at: start });
      continue;
    }
    if (c === "'" || c === '"') {
      let text = '';
      i++;
      while (i < source.length && source[i] !== c) {
        if (source[i] === '\\') {
          const escaped = source[i + 1];
          if (escaped === undefined || !(escaped in ESCAPES)) throw new ExpressionError(`unknown escape at ${i}`, source);
          text += ESCAPES[escaped];
          i += 2;
        } else text += source[i++];
      }
      if (i >= source.length) throw new ExpressionError(`unterminated string at ${start}`, source);
      i++;
      tokens.push({ type: 'string', text, value: text, at: start });
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      const match = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(source.slice(i))!;
      i += match[0].length;
      tokens.push({ type: 'name', text: match[0], at: start });
      continue;
    }
    const punct = PUNCTUATORS.find((p) => source.startsWith(p, i));
    if (!punct) throw new ExpressionError(`unexpected ${JSON.stringify(c)} at ${i}`, source);
    i += punct.length;
    tokens.push({ type: 'punct', text: punct, at: start });
  }
  return tokens;
}

const KEYWORDS: Record<string, Value> = { true: true, false: false, null: null, undefined: undefined };
const BINARY_LEVELS = [
  ['==', '!=', '===', '!=='],
  ['<', '<=', '>', '>='],
  ['+', '-'],
  ['*', '/', '%'],
];

/** Recursive descent over the tokens, one function per precedence level. */
function parse(source: string): Node {
  const tokens = tokenize(source);
  let position = 0;
  const peek = () => tokens[position];
  const isPunct = (text: string) => peek()?.type === 'punct' && peek()?.text === text;
  const fail = (what: string): never => {
    const token = peek();
    throw new ExpressionError(token ? `${what}, found ${JSON.stringify(token.text)} at ${token.at}` : `${what} at the end`, source);
  };
  const expect = (text: string) => {
    if (!isPunct(text)) fail(`expected "${text}"`);
    position++;
  };

  const conditional = (): Node => {
    const test = logical('||');
    if (!isPunct('?')) return test;
    position++;
    const then = conditional();
    expect(':');
    return { kind: 'conditional', test, then, otherwise: conditional() };
  };
  const logical = (op: '||' | '&&'): Node => {
    const next = () => (op === '||' ? logical('&&') : binary(0));
    let left = next();
    while (isPunct(op)) {
      position++;
      left = { kind: 'logical', op, left, right: next() };
    }
    return left;
  };
  const binary = (level: number): Node => {
    if (level === BINARY_LEVELS.length) return unary();
    let left = binary(level + 1);
    while (peek()?.type === 'punct' && BINARY_LEVELS[level]!.includes(peek()!.text)) {
      const op = tokens[position++]!.text;
      left = { kind: 'binary', op, left, right: binary(level + 1) };
    }
    return left;
  };
  const unary = (): Node => {
    if (isPunct('!') || isPunct('-')) {
      const op = tokens[position++]!.text as '!' | '-';
      return { kind: 'unary', op, operand: unary() };
    }
    return postfix(primary());
  };
  const list = (close: string): Node[] => {
    const items: Node[] = [];
    while (!isPunct(close)) {
      items.push(conditional());
      if (!isPunct(close)) expect(',');
    }
    position++;
    return items;
  };
  const postfix = (node: Node): Node => {
    for (;;) {
      if (isPunct('.')) {
        position++;
        const name = peek();
        if (name?.type !== 'name') fail('expected a property name');
        position++;
        if (isPunct('(')) {
          position++;
          node = { kind: 'call', object: node, method: name!.text, args: list(')') };
        } else node = { kind: 'member', object: node, property: { kind: 'literal', value: name!.text } };
      } else if (isPunct('[')) {
        position++;
        const property = conditional();
        expect(']');
        node = { kind: 'member', object: node, property };
      } else return node;
    }
  };
  const primary = (): Node => {
    const token = peek();
    if (!token) return fail('expected a value');
    position++;
    if (token.type === 'number' || token.type === 'string') return { kind: 'literal', value: token.value };
    if (token.type === 'name') {
      return Object.hasOwn(KEYWORDS, token.text) ? { kind: 'literal', value: KEYWORDS[token.text] } : { kind: 'name', name: token.text };
    }
    if (token.text === '(') {
      const inner = conditional();
      expect(')');
      return inner;
    }
    if (token.text === '[') return { kind: 'array', items: list(']') };
    position--;
    return fail('expected a value');
  };

  const tree = conditional();
  if (position < tokens.length) fail('expected the end');
  return tree;
}

const isObject = (value: Value): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/** `object[key]`: own data only, so nothing reaches a prototype (`constructor`, `__proto__`). */
function member(object: Value, key: Value): Value {
  if (typeof key !== 'string' && typeof key !== 'number') return undefined;
  if ((Array.isArray(object) || typeof object === 'string') && key === 'length') return object.length;
  if (typeof object === 'string') return typeof key === 'number' ? object[key] : undefined;
  if (isObject(object) && Object.hasOwn(object, key)) return object[key as keyof typeof object];
  return undefined;
}

function looseEqual(a: Value, b: Value): boolean {
  return a === b || (a == null && b == null);
}

function compare(op: string, a: Value, b: Value): boolean {
  const comparable = (typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string');
  if (!comparable) return false;
  const [x, y] = [a as number, b as number];
  return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
}

function evaluateNode(node: Node, scope: Scope, source: string): Value {
  const run = (n: Node) => evaluateNode(n, scope, source);
  switch (node.kind) {
    case 'literal':
      return node.value;
    case 'array':
      return node.items.map(run);
    case 'name':
      if (node.name === 'metadata') return scope.metadata;
      throw new ExpressionError(`unknown name "${node.name}" (expressions see metadata)`, source);
    case 'member':
      return member(run(node.object), run(node.property));
    case 'call': {
      const object = run(node.object);
      if (node.method !== 'includes' || !(Array.isArray(object) || typeof object === 'string')) {
        throw new ExpressionError(`${node.method}() is not available (only includes() of an array or a string)`, source);
      }
      const [needle] = node.args.map(run);
      return typeof object === 'string' ? typeof needle === 'string' && object.includes(needle) : object.includes(needle);
    }
    case 'unary':
      return node.op === '!' ? !run(node.operand) : -(run(node.operand) as number);
    case 'logical': {
      const left = run(node.left);
      if (node.op === '&&') return left ? run(node.right) : left;
      return left ? left : run(node.right);
    }
    case 'conditional':
      return run(node.test) ? run(node.then) : run(node.otherwise);
    case 'binary': {
      const [a, b] = [run(node.left), run(node.right)];
      switch (node.op) {
        case '==':
          return looseEqual(a, b);
        case '!=':
          return !looseEqual(a, b);
        case '===':
          return a === b;
        case '!==':
          return a !== b;
        case '+':
          return typeof a === 'string' || typeof b === 'string' ? `${text(a)}${text(b)}` : (a as number) + (b as number);
        case '-':
          return (a as number) - (b as number);
        case '*':
          return (a as number) * (b as number);
        case '/':
          return (a as number) / (b as number);
        case '%':
          return (a as number) % (b as number);
        default:
          return compare(node.op, a, b);
      }
    }
  }
}

/** How a value reads when joined to a string or shown: arrays joined with ", ", nothing as "". */
function text(value: Value): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(text).join(', ');
  return String(value);
}

// Parsed once per expression source: a form re-evaluates its expressions on every keystroke.
const parsed = new Map<string, Node | ExpressionError>();
const warned = new Set<string>();

function warnOnce(error: ExpressionError) {
  if (warned.has(error.message)) return;
  warned.add(error.message);
  console.warn(`metadata form: ${error.message}; it is taken as false (or no text)`);
}

/** The expression's value; throws ExpressionError when it does not parse or cannot be evaluated. */
export function evaluate(source: string, scope: Scope): Value {
  let tree = parsed.get(source);
  if (tree === undefined) {
    try {
      tree = parse(source);
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      tree = error;
    }
    parsed.set(source, tree);
  }
  if (tree instanceof ExpressionError) throw tree;
  return evaluateNode(tree, scope, source);
}

function safely<T>(source: string, scope: Scope, fallback: T, convert: (value: Value) => T): T {
  try {
    return convert(evaluate(source, scope));
  } catch (error) {
    if (!(error instanceof ExpressionError)) throw error;
    warnOnce(error);
    return fallback;
  }
}

/** A condition's truth (JavaScript truthiness); a bad expression is false, with a warning. */
export function evaluateCondition(source: string, scope: Scope): boolean {
  return safely(source, scope, false, Boolean);
}

/** An expression's value as text (`ui:description`, `ui:formatted-value`); a bad one is "", with a warning. */
export function evaluateText(source: string, scope: Scope): string {
  return safely(source, scope, '', text);
}

/** `ui:hidden`, `ui:disabled`, `ui:read-only` and an option's `hidden`/`disabled`: what Vercel's schema allows. */
export type Conditional = boolean | 'create' | 'update' | { expr: string };

/** Whether a conditional holds on this form: `true`, the form's own mode, or an expression that holds. */
export function holds(value: Conditional | undefined, mode: 'create' | 'update', scope: Scope): boolean {
  if (value === undefined || typeof value === 'boolean') return value === true;
  if (typeof value === 'string') return value === mode;
  return evaluateCondition(value.expr, scope);
}
