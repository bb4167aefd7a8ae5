// Svelte 5 strips TypeScript from <script lang="ts"> on its own; no preprocessor needed.
export default {};
