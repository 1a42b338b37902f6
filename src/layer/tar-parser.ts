/**
 * A push-style, synchronous tar parser: feed it chunks, it calls the sink for each entry's
 * header, body bytes (slices of the chunks, never copied or accumulated) and end. Metadata
 * entries (PAX 'x'/'g', GNU 'L'/'K') are consumed here, size-capped, and folded into the header.
 */
import { BerthError } from '../base/errors.js';
import {
  BLOCK,
  decodeHeaderBlock,
  finalHeader,
  isZeroBlock,
  parsePaxRecords,
  type RawHeader,
  type TarHeader,
} from './tar-header.js';

export interface TarSink {
  entry(header: TarHeader): void;
  data(chunk: Buffer): void;
  entryEnd(): void;
}

/** Metadata entries bigger than this are refused (a long name or a PAX header is never this big). */
const MAX_META = 4 * 1024 * 1024;

type State = 'header' | 'body' | 'meta' | 'pad' | 'end';

export class TarParser {
  private state: State = 'header';
  private readonly headerBuf = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private remaining = 0;
  private pad = 0;
  private metaKind: RawHeader['typeflag'] = '';
  private metaParts: Buffer[] = [];
  private longName?: string;
  private longLink?: string;
  private pax?: Map<string, Buffer>;
  private readonly globalPax = new Map<string, Buffer>();
  private zeroBlocks = 0;
  /** Number of entries delivered to the sink. */
  entries = 0;

  constructor(private readonly sink: TarSink) {}

  write(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      switch (this.state) {
        case 'header': {
          const take = Math.min(BLOCK - this.headerFill, len - pos);
          if (take === BLOCK) {
            this.onHeader(chunk.subarray(pos, pos + BLOCK));
          } else {
            chunk.copy(this.headerBuf, this.headerFill, pos, pos + take);
            this.headerFill += take;
            if (this.headerFill === BLOCK) {
              this.headerFill = 0;
              this.onHeader(this.headerBuf);
            }
          }
          pos += take;
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, len - pos);
          this.sink.data(chunk.subarray(pos, pos + take));
          this.remaining -= take;
          pos += take;
          if (this.remaining === 0) {
            this.sink.entryEnd();
            this.state = this.pad > 0 ? 'pad' : 'header';
          }
          break;
        }
        case 'meta': {
          const take = Math.min(this.remaining, len - pos);
          this.metaParts.push(Buffer.from(chunk.subarray(pos, pos + take)));
          this.remaining -= take;
          pos += take;
          if (this.remaining === 0) {
            this.onMetaComplete(Buffer.concat(this.metaParts));
            this.metaParts = [];
            this.state = this.pad > 0 ? 'pad' : 'header';
          }
          break;
        }
        case 'pad': {
          const take = Math.min(this.pad, len - pos);
          this.pad -= take;
          pos += take;
          if (this.pad === 0) this.state = 'header';
          break;
        }
        case 'end':
          // Anything after the end-of-archive marker is ignored (but still hashed by callers).
          return;
      }
    }
  }

  /** Signals the end of input; throws LAYER_INVALID if the archive stopped inside an entry. */
  end(): void {
    if (this.state === 'end') return;
    if (this.state === 'header' && this.headerFill === 0 && this.metaParts.length === 0 && !this.pendingMeta()) {
      // EOF at an entry boundary without the zero blocks: accepted, as Go's archive/tar does.
      return;
    }
    if (this.state === 'pad' && !this.pendingMeta()) {
      // The last entry's data is whole and only its block padding is missing: umoci 0.4.7
      // `insert` writes layers like this. Nothing is lost (the blob digest was checked), so accept it.
      return;
    }
    throw new BerthError(
      'LAYER_INVALID',
      'the layer tar archive is truncated (it ends inside an entry): the blob is incomplete or corrupt; fetch it again',
    );
  }

  private pendingMeta(): boolean {
    return this.longName !== undefined || this.longLink !== undefined || this.pax !== undefined;
  }

  private onHeader(block: Buffer): void {
    if (isZeroBlock(block)) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.state = 'end';
      return;
    }
    if (this.zeroBlocks > 0) {
      // A lone zero block followed by more headers: tolerated (GNU tar -i semantics).
      this.zeroBlocks = 0;
    }
    const raw = decodeHeaderBlock(block);
    switch (raw.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        if (raw.size > MAX_META) {
          throw new BerthError('LAYER_INVALID', `tar metadata entry of ${raw.size} bytes is too large (limit ${MAX_META})`);
        }
        this.metaKind = raw.typeflag;
        this.startBody(raw.size, 'meta');
        if (raw.size === 0) this.onMetaComplete(Buffer.alloc(0));
        return;
      case 'V': {
        // GNU volume label: nothing to apply; skip its data and padding.
        this.remaining = 0;
        this.pad = raw.size + ((BLOCK - (raw.size % BLOCK)) % BLOCK);
        this.state = this.pad > 0 ? 'pad' : 'header';
        return;
      }
    }
    const header = finalHeader(raw, this.longName, this.longLink, this.pax, this.globalPax);
    this.longName = undefined;
    this.longLink = undefined;
    this.pax = undefined;
    this.entries++;
    this.sink.entry(header);
    this.startBody(header.size, 'body');
    if (header.size === 0) this.sink.entryEnd();
  }

  private startBody(size: number, state: 'body' | 'meta'): void {
    this.remaining = size;
    this.pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size > 0) this.state = state;
    else this.state = this.pad > 0 ? 'pad' : 'header';
  }

  private onMetaComplete(data: Buffer): void {
    switch (this.metaKind) {
      case 'L':
        this.longName = cString(data);
        break;
      case 'K':
        this.longLink = cString(data);
        break;
      case 'x':
        this.pax = parsePaxRecords(data);
        break;
      case 'g':
        for (const [k, v] of parsePaxRecords(data)) this.globalPax.set(k, v);
        break;
    }
  }
}

function cString(data: Buffer): string {
  const nul = data.indexOf(0);
  return data.toString('utf8', 0, nul < 0 ? data.length : nul);
}
