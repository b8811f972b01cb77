# syntax=docker/dockerfile:1
# buildkite-ecr-injector image: compiled JavaScript and production dependencies only, on Node LTS,
# running as a numeric non-root user (the restricted Pod Security profile checks runAsNonRoot against
# a numeric UID). Build: docker build -t buildkite-ecr-injector:0.1.0 .
# Compile TypeScript with the dev dependencies.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies alone, in a clean stage so no dev dependency or build cache leaks in.
FROM node:22-bookworm-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# package.json says "type": "module", which Node needs to load dist/*.js as ES modules.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER 65532:65532
# 8443: HTTPS admission and probes; 9090: plain-HTTP metrics.
EXPOSE 8443 9090
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve"]
