// Output for the demo: colors only on a terminal (and without NO_COLOR), a step line per stage with its timing
// (a spinner on a terminal; one finished line per step when piped).

export interface Style {
  readonly color: boolean;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
  cyan(s: string): string;
}

function sgr(on: boolean, open: number, close: number): (s: string) => string {
  return on ? (s) => `\x1b[${open}m${s}\x1b[${close}m` : (s) => s;
}

export function makeStyle(color: boolean): Style {
  return {
    color,
    green: sgr(color, 32, 39),
    red: sgr(color, 31, 39),
    yellow: sgr(color, 33, 39),
    dim: sgr(color, 2, 22),
    bold: sgr(color, 1, 22),
    cyan: sgr(color, 36, 39),
  };
}

/** Colors when writing to a terminal, unless NO_COLOR is set (https://no-color.org). */
export function styleFor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): Style {
  return makeStyle(stream.isTTY === true && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb');
}

/** Visible width of a string (without color codes). */
export function visibleLength(s: string): number {
  return s.replace(/\x1b\[[0-9;]*m/g, '').length;
}

export function padVisible(s: string, width: number): string {
  return s + ' '.repeat(Math.max(0, width - visibleLength(s)));
}

/** `850ms`, `1.2s`, `12s`. */
export function formatSeconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.round(ms / 1000)}s`;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const LABEL_WIDTH = 50;

/** One stage at a time: `begin(label)` … `done()` / `fail()`. */
export class StepReporter {
  private current: { label: string; started: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private readonly interactive: boolean;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly style: Style,
  ) {
    this.interactive = out.isTTY === true;
  }

  /** Starts a stage (finishing the previous one, if any, as done). */
  begin(label: string): void {
    if (this.current) this.done();
    this.current = { label, started: Date.now() };
    if (this.interactive) {
      this.draw();
      this.timer = setInterval(() => this.draw(), 100);
    }
  }

  done(note = ''): number {
    return this.finish(this.style.green('✓'), note);
  }

  fail(note = ''): number {
    return this.finish(this.style.red('✗'), note);
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  private finish(mark: string, note: string): number {
    const cur = this.current;
    if (!cur) return 0;
    this.stopTimer();
    this.current = undefined;
    const elapsed = Date.now() - cur.started;
    const time = this.style.dim(formatSeconds(elapsed).padStart(6));
    const tail = note ? `  ${this.style.dim(note)}` : '';
    this.write(`${this.clear()}  ${mark} ${padVisible(cur.label, LABEL_WIDTH)}${time}${tail}\n`);
    return elapsed;
  }

  private draw(): void {
    const cur = this.current;
    if (!cur) return;
    this.frame = (this.frame + 1) % SPINNER.length;
    const elapsed = formatSeconds(Date.now() - cur.started).padStart(6);
    // A line that wraps could not be redrawn in place: cut the label to the terminal's width.
    const columns = (this.out as { columns?: number }).columns ?? 200;
    const room = Math.max(10, columns - 4 - elapsed.length - 1);
    const label = cur.label.length > room ? `${cur.label.slice(0, room - 1)}…` : cur.label;
    this.write(
      `${this.clear()}  ${this.style.cyan(SPINNER[this.frame] ?? '-')} ${padVisible(label, Math.min(LABEL_WIDTH, room))}` +
        this.style.dim(elapsed),
    );
  }

  private clear(): string {
    return this.interactive ? '\r\x1b[K' : '';
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private write(s: string): void {
    this.out.write(s);
  }
}
