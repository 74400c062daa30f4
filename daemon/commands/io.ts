// What every weftctl command shares: where its output goes (tests pass their own) and its exit codes.

export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

export const EXIT_OK = 0;
/** The service behind the command (etcd, weftd) is unreachable, refused, or answered nonsense. */
export const EXIT_UNAVAILABLE = 1;
export const EXIT_USAGE = 2;

export const processIo: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
};
