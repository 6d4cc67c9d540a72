# SealRelay container: Node 20 LTS line, data/ and certs/ as volumes.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY bin ./bin
COPY src ./src
COPY config ./config
ENV NODE_ENV=production
# glibc gives large freed buffers back to the kernel only with a fixed mmap threshold
# (its default raises the threshold after the first large free): see README "Memory".
ENV MALLOC_MMAP_THRESHOLD_=131072
VOLUME ["/app/data", "/app/certs"]
EXPOSE 2525 587 465
ENTRYPOINT ["node", "bin/sealrelay.js"]
CMD ["start"]
