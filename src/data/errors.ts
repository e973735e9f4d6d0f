// Errors for malformed data lines: the message starts with file:line, then what is wrong.

export type DataProblem =
  | 'bad_json' // the line is not valid JSON
  | 'not_object' // valid JSON, but not an object
  | 'unknown_format' // no known set of fields
  | 'missing_field' // a field the format needs is absent (or null)
  | 'wrong_type' // a field has the wrong type (or an invalid value)
  | 'wrong_kind' // a record of another dataset kind than the rest of the file
  | 'unknown_label' // a classification label outside the labels given in options
  | 'tokenize'; // the tokenizer or chat template failed on this record

/** A malformed JSONL line. `file` is the path (or the source name given for in-memory data). */
export class DataLineError extends Error {
  readonly file: string;
  readonly line: number;
  readonly problem: DataProblem;
  /** The problem alone, without the file:line prefix. */
  readonly detail: string;

  constructor(file: string, line: number, problem: DataProblem, detail: string) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'DataLineError';
    this.file = file;
    this.line = line;
    this.problem = problem;
    this.detail = detail;
  }
}

/** Thrown by record validation; the dataset builder adds file and line. */
export class RecordError extends Error {
  readonly problem: DataProblem;
  constructor(problem: DataProblem, message: string) {
    super(message);
    this.name = 'RecordError';
    this.problem = problem;
  }
}
