/**
 * Errors a user can act on. The CLI prints `message` as one line and exits non-zero;
 * anything that is not a `UserError` is a bug and keeps its stack trace.
 *
 * @example
 * ```ts
 * throw new UserError("model.json is not valid JSON: fixtures/bad/model.json. Re-export the model.");
 * ```
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}
