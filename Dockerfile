# runspec-room container image: built with dev dependencies, run on Node 20 slim with production ones only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# valibot names TypeScript as an optional peer, so npm keeps the compiler (30 MB) even with --omit=dev;
# the server never loads it.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/typescript node_modules/@typescript node_modules/.bin/tsc node_modules/.bin/tsgo \
 && npm cache clean --force

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    CONSOLE_ROOM_HOST=0.0.0.0 \
    CONSOLE_ROOM_PORT=8080 \
    CONSOLE_ROOM_NDJSON_PORT=8765 \
    CONSOLE_ROOM_DB=/data/console_room.db
WORKDIR /app
COPY package.json README.md LICENSE ./
COPY static ./static
COPY drizzle ./drizzle
COPY drizzle-pg ./drizzle-pg
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.CONSOLE_ROOM_PORT || 8080}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
# node itself is PID 1 (exec form, no shell), so SIGTERM from `docker stop` reaches its graceful shutdown.
ENTRYPOINT ["node", "dist/main.js"]
