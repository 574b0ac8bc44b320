import { data, nn, ops, tidy } from 'encsec';

async function main(): Promise<void> {
  // 64 Fashion-MNIST training images (downloaded once, then cached).
  const images = data.loadDataset('fashion-mnist', { split: 'train', limit: 64 });
  const idx = Int32Array.from({ length: 32 }, (_, i) => i);

  const enc = nn.createEncoder('cnn-small', { seed: 0 });
  const head = new nn.ProjectionHead(enc.dim, nn.projectionDim('cnn-small'), 0);
  const opt = new nn.Adam([...enc.parameters(), ...head.parameters()], { lr: 1e-3, weightDecay: 1e-6 });

  // One SimCLR step: two augmented views of each image, NT-Xent on the projections.
  const loss = tidy(() => {
    const views = data.augmentBatch(images, [...idx, ...idx], { seed: 1 }); // [64, 1, 28, 28]
    const l = ops.ntXent(head.forward(enc.forward(views)), 0.5);
    opt.zeroGrad();
    l.backward();
    opt.step();
    return l.item();
  });
  console.log(`NT-Xent loss after one step: ${loss.toFixed(4)}`);

  // Embeddings of the (unaugmented) images, computed off the event loop.
  enc.eval();
  const batch = data.toTensor(images, idx);
  const emb = await enc.embed(batch);
  console.log(`embeddings: [${emb.shape.join(', ')}]`);
  batch.dispose();
  emb.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
