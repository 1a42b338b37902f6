/**
 * The part of Go's text/template that docker users write in --format: `{{.Field.Sub}}`,
 * `{{json .X}}`, `{{index .Map "key"}}`, `{{join .List ","}}`, `{{upper .X}}`, `{{lower .X}}`,
 * `{{len .X}}`, `{{println .X}}`, method-like calls (`{{.Label "app"}}`, given as functions on
 * the value), and literal text. Values print as Go prints them: maps as map[k:v], lists as
 * [a b], a missing field as <no value>. Anything else is refused in one line.
 */
import { BerthError } from '../base/errors.js';

type Value = unknown;

function goString(v: Value): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `map[${Object.keys(o).sort().map((k) => `${k}:${goString(o[k])}`).join(' ')}]`;
  }
  return String(v);
}

/** Words of one action: .Path, "string", number, or a function name. */
function words(action: string, template: string): string[] {
  const out: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|[^\s"`]+)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(action)) !== null) { out.push(m[1]!); end = re.lastIndex; }
  if (action.slice(end).trim()) throw bad(template, `cannot read ${JSON.stringify(action)}`);
  return out;
}

function bad(template: string, why: string): BerthError {
  return new BerthError('USAGE', `--format ${JSON.stringify(template)}: ${why} (fields as {{.Name}}, functions json, index, join, upper, lower, len, println)`);
}

function field(dot: Value, path: string): Value {
  if (path === '.') return dot;
  let v: Value = dot;
  for (const name of path.slice(1).split('.')) {
    if (v === null || v === undefined || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[name];
  }
  return v;
}

function evaluate(dot: Value, ws: string[], template: string): Value {
  const arg = (w: string): Value => {
    if (w.startsWith('.')) return field(dot, w);
    if (w.startsWith('"')) return JSON.parse(w) as string;
    if (w.startsWith('`')) return w.slice(1, -1);
    if (/^-?\d+(\.\d+)?$/.test(w)) return Number(w);
    throw bad(template, `unknown word ${w}`);
  };
  const [head, ...rest] = ws;
  if (head === undefined) throw bad(template, 'an empty action');
  if (head.startsWith('.')) {
    const v = field(dot, head);
    // A method with arguments (docker's .Label "key"): a function the value offers.
    if (rest.length) {
      if (typeof v !== 'function') throw bad(template, `${head} takes no arguments`);
      return (v as (...a: Value[]) => Value)(...rest.map(arg));
    }
    return typeof v === 'function' ? (v as () => Value)() : v;
  }
  const args = rest.map(arg);
  switch (head) {
    case 'json': return JSON.stringify(args[0] ?? null);
    case 'index': {
      let v = args[0];
      for (const k of args.slice(1)) v = v === null || v === undefined ? undefined : (v as Record<string, unknown>)[String(k)];
      // Go's index of a key a map lacks is the zero value: the empty string for docker's labels.
      return v ?? '';
    }
    case 'join': return Array.isArray(args[0]) ? (args[0] as Value[]).map(goString).join(String(args[1] ?? '')) : goString(args[0]);
    case 'upper': return goString(args[0]).toUpperCase();
    case 'lower': return goString(args[0]).toLowerCase();
    case 'len': return Array.isArray(args[0]) ? args[0].length : typeof args[0] === 'object' && args[0] ? Object.keys(args[0]).length : goString(args[0]).length;
    case 'println': return `${args.map(goString).join(' ')}\n`;
    default: throw bad(template, `unknown function ${head}`);
  }
}

/** A compiled template: render(value) gives the text for one value. */
export function compileTemplate(template: string): (dot: Value) => string {
  const parts: (string | string[])[] = [];
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf('{{', at);
    if (open < 0) { parts.push(template.slice(at)); break; }
    parts.push(template.slice(at, open));
    const close = template.indexOf('}}', open + 2);
    if (close < 0) throw bad(template, 'an action {{ without its }}');
    let action = template.slice(open + 2, close);
    // {{- and -}} trim the text beside them, as Go's do.
    if (action.startsWith('- ')) { parts[parts.length - 1] = (parts[parts.length - 1] as string).trimEnd(); action = action.slice(1); }
    let trimAfter = false;
    if (action.endsWith(' -')) { trimAfter = true; action = action.slice(0, -1); }
    parts.push(words(action, template));
    at = close + 2;
    if (trimAfter) while (at < template.length && /\s/.test(template[at]!)) at++;
  }
  // Docker's --format takes \t and \n as the escapes people type in a shell.
  const text = (s: string) => s.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return (dot) => parts.map((p) => (typeof p === 'string' ? text(p) : goString(evaluate(dot, p, template)))).join('');
}
