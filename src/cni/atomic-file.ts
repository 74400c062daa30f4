import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

/** Writing a file atomically failed. Names the path and the step. */
export class AtomicWriteError extends Error {
  override name = 'AtomicWriteError';
  constructor(
    readonly path: string,
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(`cannot write ${path}: ${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

export interface WriteFileOptions {
  /** File mode of the written file (default 0o644, applied with fchmod so the umask does not narrow it). */
  mode?: number;
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Writes `content` to `filePath` atomically unless the file already holds exactly these bytes (and the
 * mode): temp file in the same directory, fsync, rename over the target, fsync the directory. Readers
 * (the CNI plugins, a restarting weftd) see either the old or the new file, never a half-written one.
 * Creates the parent directory. Resolves true when it wrote, false when the file was already current.
 */
export async function writeFileIfChanged(
  filePath: string,
  content: string | Uint8Array,
  options: WriteFileOptions = {},
): Promise<boolean> {
  const mode = options.mode ?? 0o644;
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content);

  try {
    const [current, stat] = await Promise.all([fs.readFile(filePath), fs.stat(filePath)]);
    if (current.equals(bytes) && (stat.mode & 0o7777) === mode) return false;
  } catch (err) {
    if (!isNotFound(err)) throw new AtomicWriteError(filePath, 'reading the current file', err);
  }

  const dir = path.dirname(filePath);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new AtomicWriteError(filePath, `creating directory ${dir}`, err);
  }

  // A dot-name so globbing readers (e.g. a CNI runtime listing *.conflist) never pick up the temp file.
  const tempPath = path.join(
    dir,
    `.${path.basename(filePath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  let step = 'creating the temp file';
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(
      tempPath,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_TRUNC,
      mode,
    );
    step = 'writing the temp file';
    await handle.writeFile(bytes);
    step = 'setting the mode';
    await handle.chmod(mode);
    step = 'syncing the temp file';
    await handle.sync();
    step = 'closing the temp file';
    await handle.close();
    handle = undefined;
    step = 'renaming the temp file into place';
    await fs.rename(tempPath, filePath);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fs.rm(tempPath, { force: true }).catch(() => undefined);
    throw new AtomicWriteError(filePath, step, err);
  }
  await syncDirectory(dir);
  return true;
}

/** fsync on the directory makes the rename itself durable; best effort (some filesystems refuse it). */
async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, fsConstants.O_RDONLY);
    await handle.sync();
  } catch {
    // Not fatal: the data is already synced, only the rename's durability across a crash is at stake.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
