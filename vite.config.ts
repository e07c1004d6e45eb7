import { resolve } from 'node:path';
import { defineConfig } from 'vite';

// Two pages: the participant (index.html) and the dashboard. The training
// worker is bundled as an ES module worker; the coordinator serves dist/.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: {
        participant: resolve(import.meta.dirname, 'index.html'),
        dashboard: resolve(import.meta.dirname, 'dashboard.html'),
        bench: resolve(import.meta.dirname, 'bench/client/index.html'),
      },
    },
  },
  worker: { format: 'es' },
});
