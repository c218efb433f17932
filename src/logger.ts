// The log the control plane writes to: pino in the daemon, a stub in tests.
export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  /** Failures that need an operator (pino has it; warn stands in where absent). */
  error?(obj: object, msg: string): void;
}
