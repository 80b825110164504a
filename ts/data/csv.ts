// A strict RFC 4180 CSV reader (comma separated, '"' quoting with '""' as an
// escaped quote, LF or CRLF records, quoted fields may span lines), for the
// MMLU files. Malformed input is a BAD_FILE naming file:line.
import { badLine } from './jsonl.ts';

export interface CsvRecord {
  /** 1-based line where the record starts. */
  line: number;
  fields: string[];
}

/** Parse CSV text. Blank lines between records are skipped. */
export function parseCsv(text: string, source: string): CsvRecord[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: CsvRecord[] = [];
  const n = text.length;
  let i = 0;
  let line = 1;
  while (i < n) {
    // Skip blank lines.
    if (text[i] === '\n') {
      i++;
      line++;
      continue;
    }
    if (text[i] === '\r' && text[i + 1] === '\n') {
      i += 2;
      line++;
      continue;
    }
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        const qline = line;
        i++;
        for (;;) {
          if (i >= n) throw badLine(source, qline, 'unterminated quoted field');
          const ch = text[i];
          if (ch === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (ch === '\r' && text[i + 1] === '\n') {
            // A CRLF inside a quoted field is one line break.
            i++;
            continue;
          }
          if (ch === '\n') line++;
          field += ch;
          i++;
        }
        if (i < n && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && text[i + 1] === '\n')) {
          throw badLine(source, line, 'unexpected character after a closing quote');
        }
      } else {
        const s = i;
        while (i < n && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && text[i + 1] === '\n')) {
          if (text[i] === '"') throw badLine(source, line, 'a quote inside an unquoted field');
          i++;
        }
        field = text.slice(s, i);
      }
      fields.push(field);
      if (i < n && text[i] === ',') {
        i++;
        continue;
      }
      // End of record (newline or end of text).
      if (i < n) {
        i += text[i] === '\r' ? 2 : 1;
        line++;
      }
      break;
    }
    out.push({ line: start, fields });
  }
  return out;
}
