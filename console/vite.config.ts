import { defineConfig } from "vite";

// The console is served by `voxkeepctl serve` (voxkeep/cli/serve.py), which also answers /api.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true },
  server: { proxy: { "/api": "http://127.0.0.1:8090" } },
});
