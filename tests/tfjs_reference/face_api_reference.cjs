// face-api.js's expression and recognition networks run by the real library (@vladmandic/face-api) on
// TensorFlow.js's pure-JS CPU backend: the reference viper's PyTorch ports are checked against.
//
//   NODE_PATH=<folder with node_modules> node face_api_reference.cjs IN OUT [MODELS]
//
// IN holds face_NN.npy (RGB uint8 crops, H x W x 3, any size), expression_input.npy (B, 112, 112, 3) and
// recognition_input.npy (B, 150, 150, 3): float32 pixel values as viper's `prepare` makes them from the crops.
// OUT gets, per net: <net>_batch.npy, face-api.js's own NetInput.toBatchTensor of the raw crops (what its nets
// read), <net>_out.npy, the net's output (probabilities, descriptors) on the prepared inputs, and run.json
// (backend, versions, ms per face of each batched forward). MODELS defaults to the package's own model/ folder.
'use strict';

const fs = require('fs');
const path = require('path');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const { tf } = faceapi;

function readNpy(file) {
  const buffer = fs.readFileSync(file);
  const major = buffer[6];
  const headerLength = major === 1 ? buffer.readUInt16LE(8) : buffer.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buffer.toString('latin1', start, start + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter((s) => s.trim()).map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const bytes = buffer.subarray(start + headerLength);
  const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const types = { '|u1': [Uint8Array, 'int32'], '<f4': [Float32Array, 'float32'] };
  if (!(descr in types)) throw new Error(`${file}: dtype ${descr} not handled`);
  const [ArrayType, dtype] = types[descr];
  return tf.tensor(Array.from(new ArrayType(data)), shape, dtype);
}

function writeNpy(file, tensor) {
  const shape = tensor.shape.length === 1 ? `(${tensor.shape[0]},)` : `(${tensor.shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const prefix = Buffer.alloc(10);
  prefix.write('\x93NUMPY', 0, 'latin1');
  prefix[6] = 1;
  prefix.writeUInt16LE(header.length, 8);
  const values = Float32Array.from(tensor.dataSync());
  fs.writeFileSync(file, Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.from(values.buffer)]));
}

function loadNet(net, folder, name) {
  const manifest = JSON.parse(fs.readFileSync(path.join(folder, `${name}-weights_manifest.json`)));
  const blob = Buffer.concat(manifest[0].paths.map((p) => fs.readFileSync(path.join(folder, p))));
  const data = blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.byteLength);
  net.loadFromWeightMap(tf.io.decodeWeights(data, manifest[0].weights));
}

function timed(forward, count, record, key) {
  const start = process.hrtime.bigint();
  const out = forward();
  out.dataSync();
  record[key] = Number(process.hrtime.bigint() - start) / 1e6 / count;
  return out;
}

async function main() {
  const [input, output, models] = process.argv.slice(2);
  const modelFolder = models || path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  await tf.setBackend('cpu');
  await tf.ready();
  const nets = {
    expression: [faceapi.nets.faceExpressionNet, 'face_expression_model', 112],
    recognition: [faceapi.nets.faceRecognitionNet, 'face_recognition_model', 150],
  };
  const faces = fs.readdirSync(input).filter((f) => /^face_\d+\.npy$/.test(f)).sort()
    .map((f) => readNpy(path.join(input, f)));
  const run = { backend: tf.getBackend(), tfjs: tf.version_core, faceapi: faceapi.version };
  fs.mkdirSync(output, { recursive: true });
  for (const [key, [net, name, size]] of Object.entries(nets)) {
    loadNet(net, modelFolder, name);
    writeNpy(path.join(output, `${key}_batch.npy`), new faceapi.NetInput(faces).toBatchTensor(size, true));
    const prepared = tf.unstack(readNpy(path.join(input, `${key}_input.npy`)));
    writeNpy(path.join(output, `${key}_out.npy`),
      timed(() => net.forwardInput(new faceapi.NetInput(prepared)), prepared.length, run, `${key}_ms_per_face`));
  }
  fs.writeFileSync(path.join(output, 'run.json'), JSON.stringify(run));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
