import { defineConfig } from "vite";

// The console is served by `voxkeepctl serve` (voxkeep/cli/serve.py), which also answers /api.
export default defineConfig({
  // The pages are package data of the Python package (pyproject.toml), so a wheel serves them.
  build: { outDir: "../voxkeep/console/pages", emptyOutDir: true },
  server: { proxy: { "/api": "http://127.0.0.1:8090" } },
});
