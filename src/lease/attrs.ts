import { canonicalIp, isIp, isMac } from '../ip/index.js';
import type { LeaseAttrs } from './types.js';

/** A lease value that is not flannel's attribute JSON. Names the field and what is wrong. */
export class InvalidLeaseValueError extends Error {
  override name = 'InvalidLeaseValueError';
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(field === '(value)' ? reason : `${field}: ${reason}`);
  }
}

/**
 * Largest value accepted. flannel's values are ~130 bytes; anything this large is garbage, and refusing it
 * before JSON.parse keeps a hostile value from costing memory on every node.
 */
export const MAX_LEASE_VALUE_BYTES = 16 * 1024;

/** flannel's zero IPv4 (`ip.IP4(0)`), written as PublicIP by a node without an IPv4 public address. */
const ZERO_IPV4 = '0.0.0.0';

const BACKEND_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; doing the same keeps weft's
 * values byte-identical to flannel's.
 */
function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => {
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/**
 * Encodes attributes exactly as flannel's `json.Marshal(LeaseAttrs)`: field order
 * `PublicIP, PublicIPv6, BackendType, BackendData, BackendV6Data`; `PublicIPv6` is `null` when absent;
 * the other three are omitted when empty.
 */
export function encodeLeaseAttrs(attrs: LeaseAttrs): string {
  const parts: string[] = [
    `"PublicIP":${goJson(attrs.publicIP === '' ? ZERO_IPV4 : attrs.publicIP)}`,
    `"PublicIPv6":${attrs.publicIPv6 ? goJson(attrs.publicIPv6) : 'null'}`,
  ];
  if (attrs.backendType) parts.push(`"BackendType":${goJson(attrs.backendType)}`);
  if (attrs.backendData !== undefined) parts.push(`"BackendData":${goJson(attrs.backendData)}`);
  if (attrs.backendV6Data !== undefined) parts.push(`"BackendV6Data":${goJson(attrs.backendV6Data)}`);
  return `{${parts.join(',')}}`;
}

/** Case-insensitive field lookup: Go's decoder matches JSON keys to struct fields ignoring case. */
function fieldsOf(obj: Record<string, unknown>): (name: string) => unknown {
  const byLower = new Map<string, string>();
  for (const key of Object.keys(obj)) {
    const lower = key.toLowerCase();
    const previous = byLower.get(lower);
    if (previous !== undefined) {
      throw new InvalidLeaseValueError(key, `duplicate field (also given as "${previous}")`);
    }
    byLower.set(lower, key);
  }
  return (name) => {
    const key = byLower.get(name.toLowerCase());
    return key === undefined ? undefined : obj[key];
  };
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function backendDataField(name: string, value: unknown): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isPlainObject(value)) {
    throw new InvalidLeaseValueError(name, `expected a JSON object, found ${describe(value)}`);
  }
  const get = fieldsOf(value);
  const mac = get('VtepMAC');
  if (mac !== undefined && mac !== null && !isMac(mac)) {
    throw new InvalidLeaseValueError(
      `${name}.VtepMAC`,
      `expected a MAC address like "aa:bb:cc:dd:ee:ff", found ${describe(mac)}`,
    );
  }
  const vni = get('VNI');
  if (vni !== undefined && (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 0xffffff)) {
    throw new InvalidLeaseValueError(
      `${name}.VNI`,
      `expected an integer 0..16777215, found ${describe(vni)}`,
    );
  }
  // Keep the object as flannel wrote it (field order included); only the MAC is normalised to lower case,
  // which is how Go prints a net.HardwareAddr.
  if (typeof mac === 'string' && mac !== mac.toLowerCase()) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = k.toLowerCase() === 'vtepmac' ? mac.toLowerCase() : v;
    return out;
  }
  return value;
}

/**
 * Decodes a lease value strictly. Throws `InvalidLeaseValueError` naming the field for: not JSON, not an
 * object, a value over `MAX_LEASE_VALUE_BYTES`, a PublicIP that is not IPv4, a PublicIPv6 that is not
 * IPv6, neither public address, a BackendType that is not a short name, BackendData that is not an
 * object, a VtepMAC that is not a MAC, a VNI out of range. Unknown fields are ignored (as flannel does).
 */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  if (typeof text !== 'string') throw new InvalidLeaseValueError('(value)', 'expected a JSON text');
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_LEASE_VALUE_BYTES) {
    throw new InvalidLeaseValueError('(value)', `value is ${bytes} bytes (at most ${MAX_LEASE_VALUE_BYTES})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidLeaseValueError('(value)', `not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) {
    throw new InvalidLeaseValueError('(value)', `expected a JSON object, found ${describe(parsed)}`);
  }
  const get = fieldsOf(parsed);

  const publicIPRaw = get('PublicIP');
  let publicIP = '';
  if (publicIPRaw !== undefined && publicIPRaw !== null) {
    if (!isIp(publicIPRaw, 4)) {
      throw new InvalidLeaseValueError(
        'PublicIP',
        `expected an IPv4 address, found ${describe(publicIPRaw)}`,
      );
    }
    publicIP = publicIPRaw === ZERO_IPV4 ? '' : canonicalIp(publicIPRaw);
  }

  const publicIPv6Raw = get('PublicIPv6');
  let publicIPv6: string | undefined;
  if (publicIPv6Raw !== undefined && publicIPv6Raw !== null) {
    if (!isIp(publicIPv6Raw, 6)) {
      throw new InvalidLeaseValueError(
        'PublicIPv6',
        `expected an IPv6 address, found ${describe(publicIPv6Raw)}`,
      );
    }
    publicIPv6 = canonicalIp(publicIPv6Raw);
    if (publicIPv6 === '::') publicIPv6 = undefined;
  }
  if (publicIP === '' && publicIPv6 === undefined) {
    throw new InvalidLeaseValueError('PublicIP', 'a lease needs a PublicIP (IPv4) or a PublicIPv6');
  }

  const attrs: LeaseAttrs = { publicIP };
  if (publicIPv6 !== undefined) attrs.publicIPv6 = publicIPv6;

  const backendType = get('BackendType');
  if (backendType !== undefined && backendType !== null && backendType !== '') {
    if (typeof backendType !== 'string' || !BACKEND_TYPE.test(backendType)) {
      throw new InvalidLeaseValueError(
        'BackendType',
        `expected a backend name like "vxlan" (letters, digits, . _ -, at most 64), found ${describe(backendType)}`,
      );
    }
    attrs.backendType = backendType;
  }
  const backendData = backendDataField('BackendData', get('BackendData'));
  if (backendData !== undefined) attrs.backendData = backendData;
  const backendV6Data = backendDataField('BackendV6Data', get('BackendV6Data'));
  if (backendV6Data !== undefined) attrs.backendV6Data = backendV6Data;
  return attrs;
}

/** Deep equality of two attribute sets (used to report *changed* leases). */
export function leaseAttrsEqual(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return encodeLeaseAttrs(a) === encodeLeaseAttrs(b);
}
