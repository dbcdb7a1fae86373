# The gateway and its Kafka workers run on Bun; the workers call librdkafka through bun:ffi. Node is
# needed only to install: @confluentinc/kafka-javascript builds that librdkafka (against the system
# deps) with node-gyp, and npm installs Bun.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      python3 make g++ zlib1g-dev libssl-dev libzstd-dev libcurl4-openssl-dev liblz4-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*
RUN npm install -g bun@1.4.5
WORKDIR /app
COPY package.json bun.lock ./
ENV CKJS_LINKING=dynamic npm_config_nodedir=/usr/local
RUN bun install --production --frozen-lockfile
COPY tsconfig.json bunfig.toml ./
COPY src ./src

FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      zlib1g libssl3 libzstd1 libcurl4 liblz4-1 libsasl2-2 ca-certificates \
    && rm -rf /var/lib/apt/lists/* && npm install -g bun@1.4.5
WORKDIR /app
COPY --from=build /app /app
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
USER node
HEALTHCHECK --interval=10s --timeout=3s CMD ["bun", "-e", "const r = await fetch('http://127.0.0.1:8080/health/live'); process.exit(r.ok ? 0 : 1)"]
CMD ["bun", "src/main.ts"]
