// Test support: parse Prometheus text exposition with a real parser (parse-prometheus-text-format, a
// devDependency) and check what that lenient parser lets through: every sample belongs to a declared family,
// every value is a number, no family is declared twice. Used by the observe tests only.
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';

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
    for (const [i, sample] of family.metrics.entries()) {
      const where = `${family.name}[${i}]`;
      if (family.type === 'HISTOGRAM' || family.type === 'SUMMARY') {
        checkNumber(sample.count, `${where}.count`);
        checkNumber(sample.sum, `${where}.sum`);
        for (const [le, v] of Object.entries(sample.buckets ?? sample.quantiles ?? {})) {
          checkNumber(le, `${where} bucket bound`);
          checkNumber(v, `${where} bucket ${le}`);
        }
      } else {
        checkNumber(sample.value, where);
      }
    }
    families.set(family.name, family);
  }
  return families;
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
