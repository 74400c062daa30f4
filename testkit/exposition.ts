// Test support: parse Prometheus text exposition with a real parser (parse-prometheus-text-format, a
// devDependency) and check what that lenient parser lets through: every sample belongs to a declared family,
// every value is a number, no family is declared twice, histogram buckets are cumulative and end in +Inf ==
// count. That parser folds every series of a histogram or summary into one and drops `_sum`/`_count` when the
// family has labels besides `le`/`quantile` (prom-client's `nodejs_gc_duration_seconds{kind}` has), so such
// families are regrouped here per label set from their sample lines. Used by the observe tests only.
import parsePrometheusTextFormat, {
  type ParsedFamily,
  type ParsedSample,
} from 'parse-prometheus-text-format';

export class ExpositionError extends Error {
  override name = 'ExpositionError';
}

// As Prometheus reads values (Go's ParseFloat): decimals, and Inf/Infinity/NaN in any case.
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity)$|^nan$/i;
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function checkNumber(value: string | undefined, where: string): void {
  if (value === undefined || !NUMBER.test(value)) {
    throw new ExpositionError(`${where}: ${JSON.stringify(value)} is not a sample value`);
  }
}

/** Parses and validates exposition text; returns the families by name. */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '' || line.startsWith('#')) continue;
    const name = /^[^{\s]+/.exec(line)?.[0] ?? '';
    if (!NAME.test(name))
      throw new ExpositionError(`line ${i + 1}: bad metric name in ${JSON.stringify(line)}`);
  }
  const families = new Map<string, ParsedFamily>();
  for (const family of parsePrometheusTextFormat(text)) {
    if (families.has(family.name)) throw new ExpositionError(`family ${family.name} appears twice`);
    if (family.type === 'UNTYPED') throw new ExpositionError(`samples of ${family.name} have no # TYPE line`);
    if (family.type === 'HISTOGRAM' || family.type === 'SUMMARY')
      family.metrics = regroupSeries(text, family);
    for (const [i, sample] of family.metrics.entries()) {
      const where = `${family.name}[${i}]`;
      if (family.type === 'HISTOGRAM' || family.type === 'SUMMARY') {
        checkNumber(sample.count, `${where}.count`);
        checkNumber(sample.sum, `${where}.sum`);
        for (const [le, v] of Object.entries(sample.buckets ?? sample.quantiles ?? {})) {
          checkNumber(le, `${where} bucket bound`);
          checkNumber(v, `${where} bucket ${le}`);
        }
        if (family.type === 'HISTOGRAM') checkBuckets(sample, where);
      } else {
        checkNumber(sample.value, where);
      }
    }
    families.set(family.name, family);
  }
  return families;
}

/** A sample value as Prometheus reads it (`+Inf`, `-Inf`, `NaN` included). */
function promNumber(value: string): number {
  if (/^\+?inf(inity)?$/i.test(value)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/i.test(value)) return Number.NEGATIVE_INFINITY;
  return Number(value);
}

/** Histogram buckets are cumulative and the +Inf bucket equals the count. */
function checkBuckets(sample: ParsedSample, where: string): void {
  const buckets = Object.entries(sample.buckets ?? {})
    .map(([le, v]) => [promNumber(le), promNumber(v)] as const)
    .sort((a, b) => a[0] - b[0]);
  const last = buckets[buckets.length - 1];
  if (last === undefined || last[0] !== Number.POSITIVE_INFINITY) {
    throw new ExpositionError(`${where}: no +Inf bucket`);
  }
  if (last[1] !== promNumber(sample.count ?? '')) {
    throw new ExpositionError(`${where}: +Inf bucket ${last[1]} differs from the count ${sample.count}`);
  }
  for (let i = 1; i < buckets.length; i++) {
    if ((buckets[i]?.[1] ?? 0) < (buckets[i - 1]?.[1] ?? 0)) {
      throw new ExpositionError(`${where}: bucket le=${buckets[i]?.[0]} is smaller than the one before`);
    }
  }
}

interface SampleLine {
  name: string;
  labels: Record<string, string>;
  value: string;
}

/** `name{a="x",b="y\"z"} 1.5 [timestamp]`, or null when the line does not have that shape. */
function parseSampleLine(line: string): SampleLine | null {
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
  if (name === undefined) return null;
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ') i++;
      if (line[i] === '}') break;
      const label = /^[a-zA-Z_][a-zA-Z0-9_]*="/.exec(line.slice(i))?.[0];
      if (label === undefined) return null;
      i += label.length;
      let value = '';
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\') {
          i++;
          value += line[i] === 'n' ? '\n' : (line[i] ?? '');
        } else value += line[i];
        i++;
      }
      if (line[i] !== '"') return null;
      labels[label.slice(0, -2)] = value;
      i++;
      while (line[i] === ' ') i++;
      if (line[i] === ',') i++;
    }
    i++;
  }
  const value = line.slice(i).trim().split(/\s+/)[0];
  if (value === undefined || value === '') return null;
  return { name, labels, value };
}

/**
 * The samples of a histogram or summary family, one per label set (without `le`/`quantile`), read from its
 * sample lines in `text`. Families without such labels come back as the parser gave them.
 */
function regroupSeries(text: string, family: ParsedFamily): ParsedSample[] {
  const bound = family.type === 'HISTOGRAM' ? 'le' : 'quantile';
  const lines: SampleLine[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sample = parseSampleLine(line);
    if (sample === null) continue;
    const suffix = sample.name.slice(family.name.length);
    if (!sample.name.startsWith(family.name) || !['', '_bucket', '_sum', '_count'].includes(suffix)) continue;
    lines.push(sample);
  }
  if (lines.every((l) => Object.keys(l.labels).every((k) => k === bound))) return family.metrics;
  const series = new Map<string, ParsedSample>();
  for (const line of lines) {
    const labels = Object.fromEntries(Object.entries(line.labels).filter(([k]) => k !== bound));
    const id = JSON.stringify(Object.entries(labels).sort());
    let sample = series.get(id);
    if (sample === undefined) {
      sample = { labels };
      series.set(id, sample);
    }
    const suffix = line.name.slice(family.name.length);
    if (suffix === '_sum') sample.sum = line.value;
    else if (suffix === '_count') sample.count = line.value;
    else {
      const at = line.labels[bound];
      if (at === undefined) throw new ExpositionError(`${line.name}: sample without ${bound} label`);
      if (family.type === 'HISTOGRAM') sample.buckets = { ...sample.buckets, [at]: line.value };
      else sample.quantiles = { ...sample.quantiles, [at]: line.value };
    }
  }
  return [...series.values()];
}

/** The value of the sample of `name` whose labels include `labels` (undefined when absent). */
export function sampleValue(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.get(name);
  if (family === undefined) return undefined;
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (sample === undefined) return undefined;
  return Number(sample.value ?? sample.count);
}
