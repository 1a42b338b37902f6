/**
 * Strict JSON for content-addressed documents. considerations.md: all JSON content MUST follow
 * I-JSON (RFC 7493): UTF-8, and objects MUST NOT contain duplicate names. JSON.parse silently
 * keeps the last of duplicate names while other parsers keep the first, so a document with
 * duplicates can mean different things to different tools: it is refused.
 */
import { BerthError, type ErrorCode } from '../base/errors.js';

type Frame =
  | { kind: 'object'; path: string; keys: Set<string>; expectKey: boolean; key: string }
  | { kind: 'array'; path: string; index: number };

/** Whether the quote at `at` is escaped: preceded by an odd number of backslashes. */
function isEscaped(text: string, at: number): boolean {
  let n = 0;
  while (text.charCodeAt(at - 1 - n) === 0x5c) n++;
  return n % 2 === 1;
}

/**
 * The path (e.g. `manifest.layers[0].digest`) of the first duplicate object name in `text`,
 * or undefined. `text` must already be valid JSON (run JSON.parse first).
 */
export function findDuplicateKey(text: string, root = '$'): string | undefined {
  const stack: Frame[] = [];
  const childPath = (): string => {
    const top = stack[stack.length - 1];
    if (top === undefined) return root;
    return top.kind === 'object' ? `${top.path}.${top.key}` : `${top.path}[${top.index}]`;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    switch (c) {
      case '{':
        stack.push({ kind: 'object', path: childPath(), keys: new Set(), expectKey: true, key: '' });
        i++;
        break;
      case '[':
        stack.push({ kind: 'array', path: childPath(), index: 0 });
        i++;
        break;
      case '}':
      case ']':
        stack.pop();
        i++;
        break;
      case ',': {
        const top = stack[stack.length - 1];
        if (top?.kind === 'object') top.expectKey = true;
        else if (top?.kind === 'array') top.index++;
        i++;
        break;
      }
      case ':': {
        const top = stack[stack.length - 1];
        if (top?.kind === 'object') top.expectKey = false;
        i++;
        break;
      }
      case '"': {
        let end = text.indexOf('"', i + 1);
        while (isEscaped(text, end)) end = text.indexOf('"', end + 1);
        const top = stack[stack.length - 1];
        if (top?.kind === 'object' && top.expectKey) {
          const key = JSON.parse(text.slice(i, end + 1)) as string;
          if (top.keys.has(key)) return `${top.path}.${key}`;
          top.keys.add(key);
          top.key = key;
        }
        i = end + 1;
        break;
      }
      default:
        i++; // whitespace, or a character of a number / true / false / null
    }
  }
  return undefined;
}

/**
 * Decodes UTF-8 (strictly), parses JSON and refuses duplicate object names. `name` starts the
 * paths in error messages (`manifest`, `config`, …); errors carry `code`.
 */
export function parseStrictJson(bytes: Uint8Array, name: string, code: ErrorCode): unknown {
  let text: string;
  let doc: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    doc = JSON.parse(text);
  } catch (err) {
    throw new BerthError(code, `${name} is not valid UTF-8 JSON: ${(err as Error).message}`, { cause: err });
  }
  const duplicate = findDuplicateKey(text, name);
  if (duplicate !== undefined) {
    throw new BerthError(
      code,
      `${duplicate}: the name appears more than once in its object; I-JSON forbids duplicate names (considerations.md), and tools would disagree on the value`,
      { detail: { field: duplicate } },
    );
  }
  return doc;
}
