import { defineConfig } from "vite";

// The app is served by the local app server (voxkeep/local/webapp.py), which also answers /api.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1500 },
  server: { proxy: { "/api": "http://127.0.0.1:8089" } },
});
