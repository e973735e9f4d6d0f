#!/usr/bin/env node
// Deterministic generator of the data behind tunekit's embedded base model and
// quickstart: simple English sentences (the pre-training corpus) and a
// sentiment task (the bundled fine-tuning set). Offline, seeded, byte-for-byte
// reproducible:
//   node scripts/make-corpus.mjs corpus  <out.jsonl> [sentences=200000] [seed=1]
//   node scripts/make-corpus.mjs task    <outDir>    [train=2000] [valid=200] [seed=2]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const W = {
  name: ['Tom', 'Anna', 'Sam', 'Lily', 'Max', 'Mia', 'Ben', 'Zoe', 'Leo', 'Emma'],
  animal: ['cat', 'dog', 'bird', 'fox', 'horse', 'rabbit', 'duck', 'frog', 'bear', 'mouse'],
  adjective: ['little', 'big', 'happy', 'tired', 'brave', 'quiet', 'funny', 'old', 'young', 'clever'],
  color: ['red', 'blue', 'green', 'yellow', 'white', 'black', 'brown', 'orange'],
  object: ['ball', 'book', 'kite', 'hat', 'box', 'cake', 'apple', 'boat', 'cup', 'toy'],
  place: ['in the park', 'at home', 'by the river', 'in the garden', 'at school', 'on the hill', 'in the forest', 'near the lake'],
  verbPast: ['found', 'saw', 'took', 'lost', 'liked', 'painted', 'carried', 'made', 'wanted', 'shared'],
  verbIntrans: ['ran', 'jumped', 'slept', 'laughed', 'sang', 'played', 'walked', 'danced', 'waited', 'smiled'],
  time: ['One day', 'Yesterday', 'In the morning', 'After lunch', 'At night', 'Last summer', 'On Sunday'],
  feeling: ['happy', 'sad', 'surprised', 'proud', 'scared', 'excited', 'calm'],
  thing: ['movie', 'book', 'song', 'game', 'meal', 'show', 'trip', 'story'],
  pos: ['wonderful', 'great', 'lovely', 'fantastic', 'delightful', 'excellent', 'charming', 'brilliant', 'fun', 'beautiful'],
  neg: ['terrible', 'boring', 'awful', 'dull', 'horrible', 'disappointing', 'bad', 'painful', 'ugly', 'annoying'],
  posVerb: ['loved', 'enjoyed', 'adored', 'liked'],
  negVerb: ['hated', 'disliked', 'regretted', 'could not stand'],
};

function pick(r, list) {
  return list[Math.floor(r() * list.length)];
}

function subject(r) {
  const k = r();
  if (k < 0.35) return pick(r, W.name);
  if (k < 0.7) return `the ${pick(r, W.adjective)} ${pick(r, W.animal)}`;
  return `a ${pick(r, W.animal)}`;
}

function cap(s) {
  return s[0].toUpperCase() + s.slice(1);
}

function sentence(r) {
  switch (Math.floor(r() * 7)) {
    case 0: return `${cap(subject(r))} ${pick(r, W.verbPast)} a ${pick(r, W.color)} ${pick(r, W.object)} ${pick(r, W.place)}.`;
    case 1: return `${pick(r, W.time)}, ${subject(r)} ${pick(r, W.verbIntrans)} ${pick(r, W.place)}.`;
    case 2: return `${cap(subject(r))} was ${pick(r, W.feeling)} because ${subject(r)} ${pick(r, W.verbPast)} the ${pick(r, W.object)}.`;
    case 3: return `The ${pick(r, W.object)} was ${pick(r, W.color)}, and ${subject(r)} ${pick(r, W.verbIntrans)}.`;
    case 4: return review(r, r() < 0.5).text;
    case 5: return `${cap(subject(r))} and ${subject(r)} ${pick(r, W.verbIntrans)} together ${pick(r, W.place)}.`;
    default: return `${cap(subject(r))} said, "I ${r() < 0.5 ? pick(r, W.posVerb) : pick(r, W.negVerb)} the ${pick(r, W.thing)}."`;
  }
}

function review(r, positive) {
  const adj = () => pick(r, positive ? W.pos : W.neg);
  const verb = () => pick(r, positive ? W.posVerb : W.negVerb);
  const thing = pick(r, W.thing);
  const forms = [
    () => `The ${thing} was ${adj()}.`,
    () => `I ${verb()} the ${thing}. It was ${adj()}.`,
    () => `What a ${adj()} ${thing}! ${cap(pick(r, W.name))} ${verb()} it too.`,
    () => `The ${thing} was ${adj()} and the ending was ${adj()}.`,
    () => `${cap(pick(r, W.name))} ${verb()} this ${thing}, it was really ${adj()}.`,
  ];
  return { text: pick(r, forms)(), label: positive ? 'positive' : 'negative' };
}

const [, , mode, out, a, b, c] = process.argv;
if (mode === 'corpus' && out) {
  const n = Number(a ?? 200000), r = rng(Number(b ?? 1));
  const lines = [];
  for (let i = 0; i < n; i++) {
    // short paragraphs of 2 to 4 sentences
    const k = 2 + Math.floor(r() * 3);
    lines.push(JSON.stringify({ text: Array.from({ length: k }, () => sentence(r)).join(' ') }));
  }
  writeFileSync(out, lines.join('\n') + '\n');
  console.log(`wrote ${n} paragraphs to ${out}`);
} else if (mode === 'task' && out) {
  const nTrain = Number(a ?? 2000), nValid = Number(b ?? 200), r = rng(Number(c ?? 2));
  mkdirSync(out, { recursive: true });
  const make = (n) =>
    Array.from({ length: n }, (_, i) => {
      const rv = review(r, i % 2 === 0 ? r() < 0.5 : r() >= 0.5);
      return JSON.stringify({ prompt: `Review: ${rv.text}\nSentiment:`, completion: ` ${rv.label}` });
    }).join('\n') + '\n';
  writeFileSync(join(out, 'train.jsonl'), make(nTrain));
  writeFileSync(join(out, 'valid.jsonl'), make(nValid));
  console.log(`wrote ${nTrain} training and ${nValid} validation examples to ${out}`);
} else {
  console.error('usage: make-corpus.mjs corpus <out.jsonl> [n] [seed] | task <outDir> [train] [valid] [seed]');
  process.exit(2);
}
