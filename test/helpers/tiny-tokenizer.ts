// A small WordLevel tokenizer with known ids for tests: special tokens
// <unk>=0 <pad>=1 <s>=2 </s>=3, then the letters A..Z, digits, punctuation
// and a few hundred common words (or the caller's words) in a fixed order.
// Written as a real tokenizer.json and loaded through HF's library, so tests
// exercise the same path as a user's tokenizer.
import path from 'node:path';
import { Tokenizer, writeWordLevelTokenizer } from '../../ts/tokenizer.ts';

export const TINY_SPECIALS = ['<unk>', '<pad>', '<s>', '</s>'];

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('');
const DIGITS = '0123456789'.split('');
const PUNCT = ['.', ',', ':', ';', '?', '!', "'", '"', '(', ')', '-', '_', '/'];

export const TINY_WORDS: readonly string[] = [
  // Prompt scaffolding used by the formats and converters.
  'Answer', 'Question', 'Choices', 'Context', 'Select', 'one', 'of', 'the', 'choices', 'that', 'answers',
  'following', 'question', 'with', 'only', 'True', 'False', 'or', 'yes', 'no',
  // Common words.
  'a', 'an', 'and', 'are', 'as', 'at', 'be', 'because', 'been', 'but', 'by', 'can', 'could', 'did', 'do',
  'does', 'for', 'from', 'had', 'has', 'have', 'he', 'her', 'his', 'how', 'i', 'if', 'in', 'into', 'is',
  'it', 'its', 'more', 'most', 'not', 'on', 'other', 'our', 'out', 'she', 'so', 'some', 'than', 'their',
  'them', 'then', 'there', 'these', 'they', 'this', 'to', 'up', 'was', 'we', 'were', 'what', 'when',
  'where', 'which', 'while', 'who', 'why', 'will', 'would', 'you', 'your', 'all', 'any', 'each', 'few',
  'many', 'much', 'very', 'also', 'always', 'never', 'often', 'after', 'before', 'during', 'over', 'under',
  'about', 'between', 'through', 'water', 'air', 'fire', 'earth', 'sun', 'moon', 'star', 'planet', 'light',
  'heat', 'energy', 'plant', 'plants', 'animal', 'animals', 'tree', 'trees', 'leaf', 'leaves', 'root',
  'seed', 'flower', 'food', 'gas', 'oxygen', 'carbon', 'dioxide', 'nitrogen', 'rock', 'rocks', 'soil',
  'sand', 'ice', 'rain', 'snow', 'wind', 'cloud', 'weather', 'cold', 'hot', 'warm', 'cool', 'dry', 'wet',
  'big', 'small', 'large', 'little', 'long', 'short', 'high', 'low', 'fast', 'slow', 'new', 'old', 'good',
  'bad', 'best', 'better', 'first', 'last', 'next', 'same', 'different', 'change', 'changes', 'make',
  'makes', 'use', 'uses', 'used', 'help', 'helps', 'grow', 'grows', 'live', 'lives', 'move', 'moves',
  'eat', 'eats', 'need', 'needs', 'get', 'gets', 'give', 'gives', 'go', 'goes', 'went', 'come', 'came',
  'see', 'saw', 'look', 'find', 'found', 'know', 'knew', 'think', 'thought', 'want', 'like', 'liked',
  'say', 'said', 'tell', 'told', 'ask', 'asked', 'work', 'worked', 'play', 'played', 'run', 'ran', 'walk',
  'sat', 'cat', 'dog', 'bird', 'fish', 'horse', 'cow', 'mat', 'house', 'home', 'school', 'car', 'bike',
  'road', 'city', 'town', 'country', 'world', 'man', 'woman', 'boy', 'girl', 'child', 'children',
  'people', 'friend', 'family', 'teacher', 'student', 'doctor', 'day', 'night', 'year', 'time', 'week',
  'morning', 'evening', 'summer', 'winter', 'spring', 'fall', 'red', 'blue', 'green', 'yellow', 'black',
  'white', 'quick', 'brown', 'fox', 'jumps', 'lazy', 'hello', 'John', 'Mary', 'Ian', 'Dennis', 'Kyle',
  'Logan', 'menudo', 'bowl', 'smaller', 'larger', 'warmer', 'colder', 'climate', 'likely', 'volunteered',
  'despised', 'eating', 'already', 'having', 'chess', 'paris', 'france', 'capital', 'river', 'ocean',
  'mountain', 'lake', 'sea', 'salt', 'sugar', 'milk', 'bread', 'apple', 'apples', 'orange', 'banana',
  'number', 'numbers', 'sum', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten',
];

/** The full vocabulary (after the special tokens) of makeTinyTokenizer without custom words. */
export function tinyVocab(words: readonly string[] = TINY_WORDS): string[] {
  const seen = new Set<string>(TINY_SPECIALS);
  const out: string[] = [];
  for (const w of [...LETTERS, ...DIGITS, ...PUNCT, ...words]) {
    if (!seen.has(w)) {
      seen.add(w);
      out.push(w);
    }
  }
  return out;
}

/** Write `${dir}/tokenizer.json` (WordLevel, BOS-prepending) and load it. */
export async function makeTinyTokenizer(dir: string, words?: readonly string[]): Promise<Tokenizer> {
  return writeWordLevelTokenizer(path.join(dir, 'tokenizer.json'), tinyVocab(words), { specialTokens: TINY_SPECIALS });
}
