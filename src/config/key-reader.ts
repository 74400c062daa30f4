// Reading flannel's JSON config: the error that names the field, value and rule, and a case-insensitive key
// reader (flannel's Go decoder matches keys case-insensitively) that remembers which keys were used.
/** A network-config value that breaks a rule. Names the field, the value and the rule. */
export class NetworkConfigError extends Error {
  override name = 'NetworkConfigError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly rule: string,
  ) {
    super(`network config: ${field}=${render(value)}: ${rule}`);
  }
}

function render(value: unknown): string {
  const text = value === undefined ? 'missing' : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export type Json = Record<string, unknown>;

/** Case-insensitive view of a JSON object: flannel's Go decoder matches keys case-insensitively. */
export class KeyReader {
  private readonly byLower = new Map<string, string>();
  private readonly used = new Set<string>();

  constructor(
    private readonly obj: Json,
    private readonly path: string,
  ) {
    for (const key of Object.keys(obj)) {
      const lower = key.toLowerCase();
      const previous = this.byLower.get(lower);
      if (previous !== undefined) {
        throw new NetworkConfigError(
          this.field(key),
          obj[key],
          `duplicate key (also given as "${previous}")`,
        );
      }
      this.byLower.set(lower, key);
    }
  }

  field(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  get(name: string): unknown {
    const key = this.byLower.get(name.toLowerCase());
    if (key === undefined) return undefined;
    this.used.add(key);
    const value = this.obj[key];
    return value === null ? undefined : value;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new NetworkConfigError(this.field(name), v, 'must be true or false');
    return v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new NetworkConfigError(this.field(name), v, 'must be an integer');
    }
    if (v < min || v > max)
      throw new NetworkConfigError(this.field(name), v, `must be between ${min} and ${max}`);
    return v;
  }

  string(name: string): string | undefined {
    const v = this.get(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new NetworkConfigError(this.field(name), v, 'must be a string');
    return v;
  }

  unknown(): string[] {
    return [...this.byLower.values()].filter((k) => !this.used.has(k)).map((k) => this.field(k));
  }
}
