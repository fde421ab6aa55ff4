// drizzle-kit configuration for PostgreSQL: generates SQL migrations in drizzle-pg/ from its schema.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/store/pg/schema.ts',
  out: './drizzle-pg',
});
