# SealRelay container: Node 20 LTS line, the compiled build, data/ and certs/ as volumes.
FROM node:20-bookworm-slim AS build
# better-sqlite3 is compiled here from its source, never fetched as a prebuilt binary
# from outside the npm registry; the runtime stage takes the compiled node_modules.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
ENV npm_config_build_from_source=true
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY bin ./bin
# Only the build: without src/ the command runs dist/ (bin/sealrelay.js).
COPY --from=build /app/dist ./dist
COPY config ./config
ENV NODE_ENV=production
# glibc gives freed message buffers back to the kernel only with a fixed, low mmap
# threshold; --expose-gc lets each thread collect the message bytes it let go
# (src/gc-hint.ts): see README "Memory".
ENV MALLOC_MMAP_THRESHOLD_=16384
# The relay runs as the image's unprivileged `node` user; data/ and certs/ are its own.
RUN mkdir -p /app/data /app/certs && chown node:node /app/data /app/certs
USER node
VOLUME ["/app/data", "/app/certs"]
EXPOSE 2525 587 465
# Healthy means answering: every listener greets with 220 and the store reads (sealrelay status).
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 CMD ["node", "bin/sealrelay.js", "status"]
ENTRYPOINT ["node", "--expose-gc", "bin/sealrelay.js"]
CMD ["start"]
