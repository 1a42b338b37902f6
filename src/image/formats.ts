/** String formats the image-spec refers to: RFC 6838 media types, RFC 3339 times, RFC 3986 URIs, RFC 4648 base64. */

// descriptor.md: media types MUST comply with RFC 6838 §4.2 (restricted-name, 1–127 characters
// each side of "/"); the same pattern as schema/defs-descriptor.json.
export const MEDIA_TYPE_REGEXP = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export function isMediaType(value: unknown): value is string {
  return typeof value === 'string' && MEDIA_TYPE_REGEXP.test(value);
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeapYear(y: number): boolean {
  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
}

/**
 * RFC 3339 §5.6 `date-time` (a time zone is required; "t" and, per the RFC's note, a space are
 * accepted as the separator; a leap second only at 23:59:60 UTC).
 */
export function isRfc3339DateTime(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const m = DATE_TIME.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const maxDay = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month];
  if (month < 1 || month > 12 || day < 1 || maxDay === undefined || day > maxDay) return false;
  const sign = m[7] === '-' ? -1 : 1;
  const tzHour = Number(m[8] ?? 0);
  const tzMinute = Number(m[9] ?? 0);
  if (tzHour > 23 || tzMinute > 59) return false;
  if (hour <= 23 && minute <= 59 && second <= 59) return true;
  if (second !== 60 || hour > 23 || minute > 59) return false;
  // A leap second is 23:59:60 in UTC.
  const utcMinute = minute - tzMinute * sign;
  const utcHour = hour - tzHour * sign - (utcMinute < 0 ? 1 : 0);
  return (utcHour === 23 || utcHour === -1) && (utcMinute === 59 || utcMinute === -1);
}

// RFC 3986 URI: a scheme, then only characters a URI may contain (percent-escapes well formed).
const URI = /^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#[\]]|%[0-9A-Fa-f]{2})*$/;

export function isUri(value: unknown): value is string {
  return typeof value === 'string' && URI.test(value);
}

// RFC 4648 §4: the standard alphabet, padded.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isBase64(value: unknown): value is string {
  return typeof value === 'string' && BASE64.test(value);
}
